// Command hello is the static binary put into test images: it prints its
// arguments, user id and one environment variable, so a test can tell that
// the engine ran the image as built.
package main

import (
	"fmt"
	"os"
	"strings"
)

func main() {
	fmt.Printf("hello args=%s uid=%d greeting=%s\n", strings.Join(os.Args[1:], ","), os.Getuid(), os.Getenv("GREETING"))
}
