// Command etcd is the etcd server at the release pinned in go.mod, for the local control plane:
// the API server's watch-progress features need etcd 3.5.13 or newer, which Debian does not ship.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
