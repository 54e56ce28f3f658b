//go:build linux && cgo

package ndt7test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"

	"github.com/radarpod/radarpod/internal/tlstest"
)

// CA is a throwaway certificate authority and the server certificate it
// signed, for wss tests against a private server.
type CA struct {
	// File is the CA certificate as a PEM file, what RADAR_NDT7_CA_FILE names.
	File string
	// PEM is the content of File.
	PEM []byte
	// Pool holds only the CA: a client verifying with it trusts nothing else.
	Pool *x509.CertPool
	// ServerTLS serves the leaf certificate.
	ServerTLS *tls.Config
}

// NewCA generates a CA and a server certificate for hosts (IP addresses or
// DNS names) and writes the CA to dir/ndt7-ca.pem.
func NewCA(dir string, hosts ...string) (*CA, error) {
	ca, err := tlstest.NewCA("ndt7test CA")
	if err != nil {
		return nil, err
	}
	cert, err := ca.Issue(hosts...)
	if err != nil {
		return nil, err
	}
	file := filepath.Join(dir, "ndt7-ca.pem")
	if err := os.WriteFile(file, ca.PEM, 0o644); err != nil {
		return nil, fmt.Errorf("write CA file: %w", err)
	}
	return &CA{
		File:      file,
		PEM:       ca.PEM,
		Pool:      ca.Pool,
		ServerTLS: &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}},
	}, nil
}
