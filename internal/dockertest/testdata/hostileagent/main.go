// Command hostileagent is what a compromised agent could run: tests put it
// into agent images as /hostile and run it inside the agent's container
// (docker exec, the agent's uid, mounts and capabilities: none) to attack
// what the agent shares with the updater. Each subcommand does one thing
// to a path and reports what the kernel allowed; exit 0 when it was done,
// 1 when the kernel refused, 2 on a usage error.
//
//	rmdir PATH            remove a directory (on the old layout, the
//	                      updater's state mount point)
//	mkdir PATH            create a directory (0777)
//	write PATH            write $HOSTILE_CONTENT (base64) to PATH, following
//	                      whatever is there, as any process would
//	symlink TARGET PATH   plant a symbolic link
//	fifo PATH             plant a FIFO
//	socket PATH           leave a unix socket file behind
//	sparse PATH BYTES     a sparse file of that size, with $HOSTILE_CONTENT
//	                      at its start
//	rm PATH               remove a file, link or empty directory
//	ls PATH               list a directory (what the agent can see)
package main

import (
	"encoding/base64"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) < 3 {
		usage()
	}
	cmd, path := os.Args[1], os.Args[len(os.Args)-1]
	content, err := base64.StdEncoding.DecodeString(os.Getenv("HOSTILE_CONTENT"))
	if err != nil {
		fail(2, "HOSTILE_CONTENT: %v", err)
	}
	switch cmd {
	case "rmdir":
		err = syscall.Rmdir(path)
	case "mkdir":
		err = os.Mkdir(path, 0o777)
		if err == nil {
			err = os.Chmod(path, 0o777)
		}
	case "write":
		err = os.WriteFile(path, content, 0o666)
	case "symlink":
		if len(os.Args) != 4 {
			usage()
		}
		err = os.Symlink(os.Args[2], path)
	case "fifo":
		err = syscall.Mkfifo(path, 0o666)
	case "socket":
		var fd int
		if fd, err = syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM, 0); err == nil {
			err = syscall.Bind(fd, &syscall.SockaddrUnix{Name: path})
			syscall.Close(fd)
		}
	case "sparse":
		if len(os.Args) != 4 {
			usage()
		}
		size, perr := strconv.ParseInt(os.Args[2], 10, 64)
		if perr != nil {
			usage()
		}
		var f *os.File
		if f, err = os.Create(path); err == nil {
			if _, err = f.Write(content); err == nil {
				err = f.Truncate(size)
			}
			f.Close()
		}
	case "rm":
		err = os.Remove(path)
	case "ls":
		var es []os.DirEntry
		if es, err = os.ReadDir(path); err == nil {
			for _, e := range es {
				fmt.Println(e.Name())
			}
		}
	default:
		usage()
	}
	if err != nil {
		fail(1, "%s %s: %v", cmd, path, err)
	}
	fmt.Printf("%s %s: done\n", cmd, path)
}

func usage() {
	fail(2, "usage: hostile rmdir|mkdir|write|fifo|socket|rm|ls PATH | symlink TARGET PATH | sparse BYTES PATH")
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(code)
}
