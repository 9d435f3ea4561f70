// Package sdk is the only package an Eddy job imports: a typed DataStream API
// to build a job graph, the sources, sinks and functions it is made of, and
// Main, the entry point that runs the job.
//
//	job := sdk.NewJob("wordcount")
//	lines := sdk.FromSource(job, sdk.FromSlice(text), sdk.WithUID("src"))
//	words := sdk.FlatMap(lines, split, sdk.WithUID("split"))
//	counts := sdk.Reduce(sdk.KeyBy(words, word), sum, sdk.WithUID("count"))
//	sdk.SinkTo(counts, sdk.Print[Count](), sdk.WithUID("out"))
//	sdk.Main(job)
//
// The same binary runs three ways. Built and run directly (go run ./myjob) it
// executes the whole job in one process, so that it can be debugged in an
// IDE. Launched by an Eddy worker it serves the worker's plugin protocol and
// runs the tasks it is given. Asked by the eddy CLI it describes its graph.
//
// Records are encoded with a codec chosen by type (see Codec); user types need
// no registration. Operators with a forward edge and equal parallelism are
// chained: they run in one goroutine and pass records by function call.
//
// The SDK, its runtime and its connectors must not import the control plane
// or the worker: a job binary carries only what is under plugin-sdk/.
package sdk
