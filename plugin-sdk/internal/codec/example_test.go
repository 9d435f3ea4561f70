package codec_test

import (
	"fmt"
	"time"

	"github.com/eddy-streams/eddy/plugin-sdk/internal/codec"
)

type Trade struct {
	Symbol string
	Qty    int64
	Price  float64
	At     time.Time
	venue  string // unexported fields are encoded too
}

func ExampleFor() {
	c, err := codec.For[Trade]()
	if err != nil {
		panic(err)
	}
	at := time.Date(2024, 3, 1, 9, 30, 0, 0, time.UTC)
	buf := c.Append(nil, Trade{Symbol: "EDDY", Qty: 100, Price: 12.5, At: at, venue: "XNAS"})
	buf = c.Append(buf, Trade{Symbol: "FLNK", Qty: -3, Price: 7, At: at.Add(time.Second)})

	// Records are self-delimiting: decode them one after the other.
	for len(buf) > 0 {
		t, n, err := c.Decode(buf)
		if err != nil {
			panic(err)
		}
		buf = buf[n:]
		fmt.Printf("%s %d %v %s %q\n", t.Symbol, t.Qty, t.Price, t.At.Format(time.TimeOnly), t.venue)
	}

	_, err = codec.For[struct{ OnDone func() }]()
	fmt.Println(err)
	// Output:
	// EDDY 100 12.5 09:30:00 "XNAS"
	// FLNK -3 7 09:30:01 ""
	// codec for struct { OnDone func() }: field OnDone: func types cannot be encoded
}
