package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		in   []float64
		want stats
	}{
		{name: "empty", in: nil, want: stats{}},
		{name: "one", in: []float64{2}, want: stats{n: 1, median: 2, worst: 2}},
		{name: "odd", in: []float64{5, 1, 3, 9, 4}, want: stats{n: 5, median: 4, worst: 9}},
		{name: "even", in: []float64{4, 1, 3, 2}, want: stats{n: 4, median: 2.5, worst: 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.in); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseResultsErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
	}{
		{name: "unknown record", in: "speed\tx\t1\n"},
		{name: "short converge", in: "converge\truche\t1\t2.0\t3.0\n"},
		{name: "bad seconds", in: "converge\truche\t1\tfast\t2.0\t1.0\n"},
		{name: "negative", in: "converge\truche\t1\t1\t2.0\t-1\n"},
		{name: "bad rss", in: "rss\truche-up\tlots\t1,2\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseResults(strings.NewReader(tt.in))
			if !errors.Is(err, errParse) {
				t.Errorf("err = %v, want %v", err, errParse)
			}
		})
	}
}

const sample = `# a comment
converge	docker-run	1	4.0	3.9	0.5
converge	ruche	1	4.5	5.0	1.0
converge	swarm	1	9.0	14.0	0.5
converge	docker-run	2	5.0	4.9	0.5
converge	ruche	2	6.0	6.5	2.0
converge	swarm	2	11.0	16.0	0.5
converge	docker-run	3	4.5	4.4	0.5
converge	ruche	3	5.5	6.0	1.5
converge	swarm	3	10.0	15.0	0.5
rss	ruche-up	61440	60000,61440
rss	dockerd	102400	100000,102400,101000
`

func TestGoals(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // verdicts in order
	}{
		{
			name: "all met",
			// ruche running median 5.5 / docker 4.5 = 1.22; deploy median 6.0 / 4.5 = 1.33
			in:   sample,
			want: []string{verdictMet, verdictNotMet, verdictMet, verdictMet, verdictMet},
		},
		{
			name: "a failed ruche trial fails the ruche goals",
			in:   sample + "failed\truche\t4\tdeploy timed out\n",
			want: []string{verdictNotMet, verdictNotMet, verdictNotMet, verdictNotMet, verdictMet},
		},
		{
			name: "swarm missing, rss over",
			in: "converge\tdocker-run\t1\t4.0\t4.0\t1.0\nconverge\truche\t1\t4.0\t4.1\t2.0\n" +
				"rss\truche-up\t97657\t97657\n", // 97657 KiB = 100.001 MB
			want: []string{verdictMet, verdictMet, verdictNotMeasured, verdictNotMeasured, verdictNotMet},
		},
		{
			name: "nothing",
			in:   "",
			want: []string{verdictNotMeasured, verdictNotMeasured, verdictNotMeasured, verdictNotMeasured, verdictNotMeasured},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseResults(strings.NewReader(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			gs := goals(r, 20, 50)
			if len(gs) != len(tt.want) {
				t.Fatalf("got %d goals, want %d", len(gs), len(tt.want))
			}
			for i, g := range gs {
				if g.verdict != tt.want[i] {
					t.Errorf("goal %q: verdict %q (measured %s), want %q", g.goal, g.verdict, g.measured, tt.want[i])
				}
			}
		})
	}
}

func TestWriteReport(t *testing.T) {
	netRuns := "converge\tdocker-run-net\t1\t5.0\t5.0\t0.5\nconverge\tdocker-run-net\t2\t5.0\t5.0\t0.5\n" +
		"converge\tdocker-run-none\t1\t3.6\t3.6\t0.5\n" +
		"converge\truche-docker\t1\t5.5\t6.2\t1.5\n" +
		"converge\tswarm-net\t1\t11.0\t16.0\t0.5\n" +
		// wired: running after 2.0 s, all wired (the command) after 2.5 s
		"converge\twired\t1\t2.0\t2.5\t0.4\n"
	r, err := parseResults(strings.NewReader(sample + netRuns + "failed\tswarm\t4\tservice create: timeout\n"))
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	writeReport(&b, r, 20, 50)
	got := b.String()
	for _, want := range []string{
		"| 20 × `docker run -d` in parallel (baseline) | 3/3 | 0.50 s | 4.50 s | 5.00 s | 4.40 s | 4.90 s |",
		"| `ruche deploy` (ruche up: ruche's networks, its default as root; converged = every replica wired: its namespace has its default route) | 3/3 | 1.50 s | 5.50 s | 6.00 s | 6.00 s | 6.50 s |",
		"| `ruche deploy` (ruche up --networks docker: a Docker network per project network, context) | 1/1 | 1.50 s | 5.50 s | 5.50 s | 6.20 s | 6.20 s |",
		"| `docker service create --detach=false` (Swarm) | 3/4 | 0.50 s | 10.00 s | 11.00 s | 15.00 s | 16.00 s |",
		"Failed, swarm: trial 4: service create: timeout",
		"| ruche-up | 60.0 MiB (62.9 MB) | 2 |",
		"| dockerd | 100.0 MiB (104.9 MB) | 3 |",
		"| 1.22× (5.50 s vs 4.50 s) | met |",
		"| 20 × `docker run -d` in parallel on a network of their own (context) | 2/2 | 0.50 s | 5.00 s | 5.00 s | 5.00 s | 5.00 s |",
		"Context (not a goal): on a network of their own, the same `docker run -d` converged in 5.00 s, 1.11× their time on the default bridge; ruche with `--networks docker`, whose replicas join their project's Docker network, took 1.10× that.",
		"Swarm on a network of its own (as `docker stack deploy` gives each stack) converged in 11.00 s; ruche with `--networks docker`, on its project's Docker network, took 0.50× that.",
		"| the same on an overlay network of its own, endpoint mode dnsrr (Swarm, context) | 1/1 | 0.50 s | 11.00 s |",
		"Without any Docker network (`--network none`, what is left to dockerd when the platform wires containers itself) they converged in 3.60 s, 0.80× their time on the default bridge.",
		"| prototype: 20 containers without a Docker network, wired by netlink (`bench/netwire`, context; converged = all wired) | 1/1 | 0.40 s | 2.50 s | 2.50 s | 2.50 s | 2.50 s |",
		"had all its containers wired in 2.50 s, 0.25× Swarm's convergence",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; got:\n%s", want, got)
		}
	}
}
