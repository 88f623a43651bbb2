package main

import (
	"fmt"
	"time"
)

// pct is the p-quantile of sorted d.
func pct(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func us(d time.Duration) string { return fmt.Sprintf("%.1f µs", float64(d)/1e3) }

func p50p99(d []time.Duration) string {
	return fmt.Sprintf("p50 %s p99 %s", ms(pct(d, .5)), ms(pct(d, .99)))
}

// printAdded prints one latency figure of the plain and the module site
// and what the module adds at p50 and p99 (sorted inputs).
func printAdded(what string, plain, module []time.Duration) {
	fmt.Printf("  %-24s plain %s | module %s | added p50 %s p99 %s (n=%d/%d)\n", what, p50p99(plain), p50p99(module),
		ms(pct(module, .5)-pct(plain, .5)), ms(pct(module, .99)-pct(plain, .99)), len(plain), len(module))
}

// per divides CPU time by a count of events or requests.
func per(cpu time.Duration, n int) time.Duration {
	if n == 0 {
		return 0
	}
	return cpu / time.Duration(n)
}
