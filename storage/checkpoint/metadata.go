// Package checkpoint is the layout of checkpoints and savepoints in
// storage: the _metadata file that makes a directory a checkpoint, and the
// names inside it. The format is described in docs/savepoint-format.md.
package checkpoint

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/eddy-streams/eddy/proto/pluginpb"
	"github.com/eddy-streams/eddy/storage"
)

// MetadataName is the name of the file that lists a checkpoint's state. It
// is written last: a directory without it is not a checkpoint.
const MetadataName = "_metadata"

// Magic opens every _metadata file.
const Magic = "EDDYMETA"

// FormatVersion is the version of the _metadata format this code writes;
// it reads this version only.
const FormatVersion = 1

var (
	// ErrNotMetadata is wrapped by errors for bytes that are not a
	// _metadata file.
	ErrNotMetadata = errors.New("not an Eddy checkpoint metadata file")
	// ErrVersion is wrapped by errors for a format version this code does
	// not read.
	ErrVersion = errors.New("unknown checkpoint format version")
	// ErrCorrupt is wrapped by errors for a _metadata file that fails its
	// checksum or does not decode.
	ErrCorrupt = errors.New("corrupt checkpoint metadata")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Dir returns the name of checkpoint id's directory under a job's
// checkpoint directory.
func Dir(id uint64) string { return fmt.Sprintf("chk-%d", id) }

// EncodeMetadata frames m: the magic, the format version (4 bytes, big
// endian), the length of the body (8 bytes, big endian), the body (m in
// protobuf), and the CRC-32C of everything before it (4 bytes, big endian).
func EncodeMetadata(m *pluginpb.CheckpointMetadata) ([]byte, error) {
	m = proto.CloneOf(m)
	m.FormatVersion = FormatVersion
	body, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode checkpoint metadata: %w", err)
	}
	b := make([]byte, 0, len(Magic)+4+8+len(body)+4)
	b = append(b, Magic...)
	b = binary.BigEndian.AppendUint32(b, FormatVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(len(body)))
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// DecodeMetadata reads what EncodeMetadata wrote.
func DecodeMetadata(b []byte) (*pluginpb.CheckpointMetadata, error) {
	const head = len(Magic) + 4 + 8
	if len(b) < len(Magic) || !bytes.Equal(b[:len(Magic)], []byte(Magic)) {
		return nil, ErrNotMetadata
	}
	if len(b) < head+4 {
		return nil, fmt.Errorf("%w: %d bytes, too short", ErrCorrupt, len(b))
	}
	if v := binary.BigEndian.Uint32(b[len(Magic):]); v != FormatVersion {
		return nil, fmt.Errorf("%w %d (this Eddy reads version %d)", ErrVersion, v, FormatVersion)
	}
	n := binary.BigEndian.Uint64(b[len(Magic)+4:])
	if n != uint64(len(b)-head-4) {
		return nil, fmt.Errorf("%w: body of %d bytes in a file of %d", ErrCorrupt, n, len(b))
	}
	end := len(b) - 4
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.BigEndian.Uint32(b[end:]); got != want {
		return nil, fmt.Errorf("%w: checksum %08x, recorded %08x", ErrCorrupt, got, want)
	}
	m := &pluginpb.CheckpointMetadata{}
	if err := proto.Unmarshal(b[head:end], m); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return m, nil
}

// WriteMetadata writes m as the _metadata of the checkpoint directory dir
// in st ("" for st's root), which makes the checkpoint complete in storage.
func WriteMetadata(ctx context.Context, st storage.Store, dir string, m *pluginpb.CheckpointMetadata) error {
	b, err := EncodeMetadata(m)
	if err != nil {
		return err
	}
	if _, err := st.Put(ctx, join(dir, MetadataName), bytes.NewReader(b)); err != nil {
		return fmt.Errorf("write checkpoint metadata: %w", err)
	}
	return nil
}

// ReadMetadata reads the _metadata of the checkpoint directory dir in st.
func ReadMetadata(ctx context.Context, st storage.Store, dir string) (*pluginpb.CheckpointMetadata, error) {
	name := join(dir, MetadataName)
	rc, _, err := st.Open(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint metadata %s: %w", st.URL(name), err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint metadata %s: %w", st.URL(name), err)
	}
	m, err := DecodeMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint metadata %s: %w", st.URL(name), err)
	}
	return m, nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}
