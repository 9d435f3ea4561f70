// Command nexmark runs one query of the Nexmark benchmark as an Eddy job:
// it generates the auction events (people, auctions, bids) of the
// nexmark package's deterministic generator, runs the query over them and
// writes its results, one line per record, to part files (-out), or drops
// them, each sink subtask printing how many it received.
//
// Run it locally, every operator in this process:
//
//	go run ./examples/nexmark -query q5 -events 1000000 -out /tmp/q5
//	EDDY_PARALLELISM=1 go run ./examples/nexmark -query q0 -events 10000000
//
// or on a cluster, where the arguments after -- reach the job:
//
//	go build -o nexmark-job ./examples/nexmark
//	eddy run -p 4 ./nexmark-job -- -query q5 -events 100000000
//	eddy nexmark --cluster --artifact ./nexmark-job --query q5 -p 4
//
// -events-out DIR writes the generated events too, one per line: the
// event's kind, then its fields, comma-separated.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/eddy-streams/eddy/nexmark"
	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

func main() {
	fs := flag.NewFlagSet("nexmark", flag.ExitOnError)
	name := fs.String("query", "q0", "the query to run: "+strings.Join(nexmark.Names(), ", "))
	out := fs.String("out", "", "write the results to part files in this directory (default: count and drop them)")
	eventsOut := fs.String("events-out", "", "write the generated events to part files in this directory too")
	cfg := nexmark.DefaultConfig()
	cfg.RegisterFlags(fs)
	_ = fs.Parse(os.Args[1:])

	q, ok := nexmark.Lookup(*name)
	if !ok {
		fmt.Fprintf(os.Stderr, "nexmark: unknown query %q: want one of %s\n", *name, strings.Join(nexmark.Names(), ", "))
		os.Exit(2)
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(os.Stderr, "nexmark: %v\n", err)
		os.Exit(2)
	}
	job := sdk.NewJob("nexmark-" + q.Name)
	events := nexmark.Events(job, cfg)
	if *eventsOut != "" {
		sdk.SinkTo(events, sdk.FileSink(*eventsOut, nexmark.Event.String), sdk.WithUID("events-out"))
	}
	if *out != "" {
		q.AddTo(events, nexmark.Output{Dir: *out})
	} else {
		q.AddTo(events, nexmark.Output{Report: func(subtask int, results int64, elapsed time.Duration) {
			fmt.Printf("subtask %d: %d results in %v\n", subtask, results, elapsed.Round(time.Millisecond))
		}})
	}
	sdk.Main(job)
}
