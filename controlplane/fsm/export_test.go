package fsm

// Snapshot format details for the external tests, which corrupt snapshots on
// purpose and must not hard-code the format.
const (
	SnapshotMagic     = snapshotMagic
	SnapshotVersion   = snapshotVersion
	SnapshotHeaderLen = len(snapshotMagic) + 4 + 8

	RecordEnd = byte(recEnd)
	RecordJob = byte(recJob)
)
