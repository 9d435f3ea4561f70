// Command wordcount is the classic streaming word count as an Eddy job: it
// generates a deterministic text, splits its lines into words, keys them by
// word and keeps a running count per word, printing every update (or
// writing it to files with -out).
//
// Run it locally, every operator in this process:
//
//	go run ./examples/wordcount -lines 20
//	EDDY_PARALLELISM=1 go run ./examples/wordcount -lines 20
//
// or on a cluster, where the arguments after -- reach the job:
//
//	go build -o wordcount ./examples/wordcount
//	eddy run -p 4 ./wordcount -- -lines 100000 -out /data/wordcount
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"

	sdk "github.com/eddy-streams/eddy/plugin-sdk"
)

// WordCount is a word and how often it has been seen so far.
type WordCount struct {
	Word  string
	Count int64
}

func (c WordCount) String() string { return fmt.Sprintf("(%s,%d)", c.Word, c.Count) }

func main() {
	// The job's arguments come in os.Args, locally and on a worker alike.
	fs := flag.NewFlagSet("wordcount", flag.ExitOnError)
	lines := fs.Int64("lines", 10_000, "how many lines of text to generate")
	seed := fs.Uint64("seed", 1, "the seed of the generated text")
	out := fs.String("out", "", "write the counts to part files in this directory instead of printing them")
	_ = fs.Parse(os.Args[1:])

	job := sdk.NewJob("wordcount")
	text := sdk.FromSource(job, sdk.Generate(*lines, textLine(*seed)), sdk.WithUID("text"))
	words := sdk.FlatMap(text, func(line string, out sdk.Collector[WordCount]) {
		for _, w := range strings.Fields(line) {
			out.Collect(WordCount{Word: w, Count: 1})
		}
	}, sdk.WithUID("split"))
	counts := sdk.Reduce(sdk.KeyBy(words, func(c WordCount) string { return c.Word }),
		func(acc, c WordCount) WordCount { return WordCount{Word: acc.Word, Count: acc.Count + c.Count} },
		sdk.WithUID("count"))
	if *out != "" {
		sdk.SinkTo(counts, sdk.FileSink(*out, func(c WordCount) string { return fmt.Sprintf("%s %d", c.Word, c.Count) }),
			sdk.WithUID("files"))
	} else {
		sdk.SinkTo(counts, sdk.Print[WordCount](), sdk.WithUID("print"))
	}
	sdk.Main(job)
}

// vocabulary is 1000 made-up words of two syllables.
var vocabulary = func() []string {
	onsets := []string{"b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "sh", "tr", "st", "gr", "pl", "ch"}
	nuclei := []string{"a", "e", "i", "o", "u", "ai", "ou", "ee", "oa", "y"}
	var syllables []string
	for _, o := range onsets {
		for _, n := range nuclei {
			syllables = append(syllables, o+n)
		}
	}
	words := make([]string, 0, 1000)
	for i := 0; len(words) < 1000; i++ {
		// Walk the pairs with a stride coprime to their number, so that
		// the first 1000 words are spread over all syllables.
		k := (i * 7919) % (len(syllables) * len(syllables))
		words = append(words, syllables[k/len(syllables)]+syllables[k%len(syllables)])
	}
	return words
}()

// textLine returns the generator of line i: 4 to 12 words drawn from the
// vocabulary with a Zipf distribution, from a random source seeded with
// the seed and i alone, so that any subtask (or a restored job) makes the
// same line i.
func textLine(seed uint64) func(i int64) string {
	return func(i int64) string {
		r := rand.New(rand.NewPCG(seed, uint64(i)))
		zipf := rand.NewZipf(r, 1.2, 2, uint64(len(vocabulary)-1))
		n := 4 + r.IntN(9)
		var b strings.Builder
		for k := range n {
			if k > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(vocabulary[zipf.Uint64()])
		}
		return b.String()
	}
}
