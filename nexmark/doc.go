// Package nexmark is the Nexmark benchmark for Eddy: the online-auction
// events (people, auctions, bids), a deterministic generator faithful to the
// reference one (nexmark-flink's, with Beam's per-event seeding), a
// splittable, checkpointable source of its events, and the benchmark's
// queries as job builders with the semantics of their Flink SQL versions.
//
//	job := sdk.NewJob("nexmark-q5")
//	events := nexmark.Events(job, nexmark.DefaultConfig())
//	sdk.SinkTo(nexmark.Q5(events), sdk.Print[nexmark.Q5Result](), sdk.WithUID("out"))
//	sdk.Main(job)
//
// Event i of a configuration is a function of i and the configuration
// alone, so a job produces the same events, and the same results, at any
// parallelism and after any restore.
//
// The package is imported by job binaries (examples/nexmark) and by the
// eddy CLI: it must depend only on the SDK (plugin-sdk) and the standard
// library.
package nexmark
