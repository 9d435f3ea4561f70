package sdk

import "os"

// EDDY_TEST_STATE_BACKEND=pebble runs every test of the package with keyed
// state on the Pebble backend.
func init() {
	if os.Getenv("EDDY_TEST_STATE_BACKEND") == "pebble" {
		defaultStateBackend = PebbleStateBackend(PebbleMemTableSize(1 << 20))
	}
}
