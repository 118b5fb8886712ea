// Command ipfs is the Kubo IPFS daemon, built from the Go module proxy.
//
// It is a thin wrapper around Kubo's own entry point so that `go build`
// works even though Kubo's go.mod carries exclude directives, which
// `go install module@version` refuses.
package main

import (
	"os"

	"github.com/ipfs/kubo/cmd/ipfs/kubo"
)

func main() {
	os.Exit(kubo.Start(kubo.BuildDefaultEnv))
}
