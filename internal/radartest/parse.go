package radartest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// NDT7Result is what the service extracts from an NDT7 upload.
type NDT7Result struct {
	// Download and Upload in Mbit/s, MinRTT in ms: from the last line.
	Download, Upload, MinRTT float64
	// DownloadID and UploadID are the server's ConnectionInfo.UUID of each
	// test.
	DownloadID, UploadID string
	// LossRate is BytesRetrans/BytesSent of the download test's last server
	// TCPInfo; HasLossRate is false when no such line has BytesSent > 0.
	LossRate    float64
	HasLossRate bool
	// DownloadBytes and UploadBytes are the last AppInfo.NumBytes of each
	// test (the data the test used).
	DownloadBytes, UploadBytes int64
	// Lines counts the measurement lines before the summary.
	Lines int
}

// DataUsed is the bytes both tests moved, as the service bills a pod.
func (r NDT7Result) DataUsed() int64 { return r.DownloadBytes + r.UploadBytes }

type ndt7Line struct {
	Key   string `json:"Key"`
	Value *struct {
		Origin  string `json:"Origin"`
		Test    string `json:"Test"`
		AppInfo *struct {
			NumBytes float64 `json:"NumBytes"`
		} `json:"AppInfo"`
		ConnectionInfo *struct {
			UUID string `json:"UUID"`
		} `json:"ConnectionInfo"`
		TCPInfo *struct {
			BytesRetrans float64 `json:"BytesRetrans"`
			BytesSent    float64 `json:"BytesSent"`
		} `json:"TCPInfo"`
	} `json:"Value"`
}

type summaryValue struct {
	Value *float64 `json:"Value"`
}

// ParseNDT7 reads an NDT7 result as the service does: newline-delimited
// JSON, every line must parse, measurement lines are
// {"Key":"measurement","Value":{...}}, and the last line is the summary.
func ParseNDT7(raw []byte) (NDT7Result, error) {
	var r NDT7Result
	text := strings.TrimRight(string(raw), "\n")
	if text == "" {
		return r, errors.New("ndt7: empty result")
	}
	lines := strings.Split(text, "\n")
	for i, line := range lines[:len(lines)-1] {
		var l ndt7Line
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			return r, fmt.Errorf("ndt7: line %d: %w", i+1, err)
		}
		if l.Key != "measurement" || l.Value == nil {
			return r, fmt.Errorf("ndt7: line %d is not a measurement line", i+1)
		}
		r.Lines++
		v := l.Value
		if v.ConnectionInfo != nil && v.ConnectionInfo.UUID != "" {
			switch v.Test {
			case "download":
				r.DownloadID = v.ConnectionInfo.UUID
			case "upload":
				r.UploadID = v.ConnectionInfo.UUID
			}
		}
		if v.TCPInfo != nil && v.Test == "download" && v.TCPInfo.BytesSent > 0 {
			r.LossRate = v.TCPInfo.BytesRetrans / v.TCPInfo.BytesSent
			r.HasLossRate = true
		}
		if v.AppInfo != nil {
			switch v.Test {
			case "download":
				r.DownloadBytes = int64(v.AppInfo.NumBytes)
			case "upload":
				r.UploadBytes = int64(v.AppInfo.NumBytes)
			}
		}
	}
	var sum struct {
		Download, Upload, MinRTT *summaryValue
	}
	last := lines[len(lines)-1]
	dec := json.NewDecoder(bytes.NewReader([]byte(last)))
	if err := dec.Decode(&sum); err != nil {
		return r, fmt.Errorf("ndt7: summary line: %w", err)
	}
	if sum.Download == nil || sum.Download.Value == nil || sum.Upload == nil || sum.Upload.Value == nil || sum.MinRTT == nil || sum.MinRTT.Value == nil {
		return r, fmt.Errorf("ndt7: last line is not a summary with Download, Upload and MinRTT values: %.200s", last)
	}
	r.Download, r.Upload, r.MinRTT = *sum.Download.Value, *sum.Upload.Value, *sum.MinRTT.Value
	return r, nil
}

// OoklaResult is what the service extracts from an OOKLA upload.
type OoklaResult struct {
	// Download and Upload in Mbit/s, from bandwidth in bytes/s.
	Download, Upload float64
	// DownloadBandwidth and UploadBandwidth as sent, in bytes/s.
	DownloadBandwidth, UploadBandwidth int64
	DownloadBytes, UploadBytes         int64
	// Latency and Jitter of the ping phase, in ms.
	Latency, Jitter float64
	// PacketLoss in percent; Ookla omits it when it could not measure it.
	PacketLoss    float64
	HasPacketLoss bool
	// ResultID is result.id, Ookla's id of the result.
	ResultID string
}

// ParseOokla reads the JSON of `speedtest --format=json` as the service
// does.
func ParseOokla(raw []byte) (OoklaResult, error) {
	var o struct {
		Type string `json:"type"`
		Ping *struct {
			Latency *float64 `json:"latency"`
			Jitter  float64  `json:"jitter"`
		} `json:"ping"`
		Download *struct {
			Bandwidth *float64 `json:"bandwidth"`
			Bytes     *float64 `json:"bytes"`
		} `json:"download"`
		Upload *struct {
			Bandwidth *float64 `json:"bandwidth"`
			Bytes     *float64 `json:"bytes"`
		} `json:"upload"`
		PacketLoss *float64 `json:"packetLoss"`
		Result     *struct {
			ID string `json:"id"`
		} `json:"result"`
	}
	var r OoklaResult
	if err := json.Unmarshal(raw, &o); err != nil {
		return r, fmt.Errorf("ookla: %w", err)
	}
	if o.Type != "result" {
		return r, fmt.Errorf("ookla: type %q, want \"result\"", o.Type)
	}
	if o.Download == nil || o.Download.Bandwidth == nil || o.Download.Bytes == nil ||
		o.Upload == nil || o.Upload.Bandwidth == nil || o.Upload.Bytes == nil ||
		o.Ping == nil || o.Ping.Latency == nil {
		return r, errors.New("ookla: download/upload bandwidth and bytes and ping.latency are required")
	}
	r.DownloadBandwidth, r.UploadBandwidth = int64(*o.Download.Bandwidth), int64(*o.Upload.Bandwidth)
	r.Download = *o.Download.Bandwidth / (1000 * 1000) * 8
	r.Upload = *o.Upload.Bandwidth / (1000 * 1000) * 8
	r.DownloadBytes, r.UploadBytes = int64(*o.Download.Bytes), int64(*o.Upload.Bytes)
	r.Latency, r.Jitter = *o.Ping.Latency, o.Ping.Jitter
	if o.PacketLoss != nil {
		r.PacketLoss, r.HasPacketLoss = *o.PacketLoss, true
	}
	if o.Result != nil {
		r.ResultID = o.Result.ID
	}
	return r, nil
}
