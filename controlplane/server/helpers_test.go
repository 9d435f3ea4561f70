package server_test

import (
	"os"

	"github.com/eddy-streams/eddy/proto/eddypb"
)

func registerReq(id string, slots uint32) *eddypb.RegisterWorkerRequest {
	return &eddypb.RegisterWorkerRequest{WorkerId: id, Address: "127.0.0.1:1", Slots: slots, InstanceId: id + "-1"}
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o644) }
