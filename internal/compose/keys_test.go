package compose

import (
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/schema"
)

// TestRulesAreComposeKeys catches a typo in the rules table: a rule for a
// key compose does not know would never match, and the key it meant would
// fall back to the generic refusal.
func TestRulesAreComposeKeys(t *testing.T) {
	var schemaPaths []string
	for _, p := range schema.AttributePaths() {
		schemaPaths = append(schemaPaths, string(p))
	}
	for p := range rules {
		ok := slices.ContainsFunc(schemaPaths, func(s string) bool {
			return s == p || strings.HasPrefix(s, p+".")
		})
		if !ok {
			t.Errorf("rule %q is not a key of compose's schema", p)
		}
	}
}

// TestREADMEListsEveryKey keeps README.md, the operator's reference, in
// step with the rules: every top-level and service key ruche honours or
// refuses by name is mentioned there.
func TestREADMEListsEveryKey(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	keyName := regexp.MustCompile(`^(services\.\*\.|volumes\.\*\.|networks\.\*\.|secrets\.\*\.|configs\.\*\.)?([a-z_]+)$`)
	var missing []string
	for p := range rules {
		m := keyName.FindStringSubmatch(p)
		if m == nil {
			continue
		}
		if !strings.Contains(string(readme), "`"+m[2]+"`") {
			missing = append(missing, p)
		}
	}
	sort.Strings(missing)
	for _, p := range missing {
		t.Errorf("README.md does not mention %q (as `%s`)", p, p[strings.LastIndex(p, ".")+1:])
	}
}

func TestEveryRefusalHasAReason(t *testing.T) {
	for p, r := range rules {
		if r.refuse != "" && (r.free || r.check != nil) {
			t.Errorf("rule %q refuses and also checks or frees its value", p)
		}
	}
}

func TestLookup(t *testing.T) {
	tests := []struct {
		parent, key string
		wantPattern string
		wantKnown   bool
		wantRefused bool
	}{
		{"", "services", "services", true, false},
		{"services", "web", "services.*", true, false},
		{"services", "image", "services.*", true, false}, // a service named image
		{"services.*", "image", "services.*.image", true, false},
		{"services.*", "privileged", "services.*.privileged", true, true},
		{"services.*", "imagee", "", false, false},
		{"services.*.depends_on", "db", "services.*.depends_on.*", true, false},
		{"services.*", "cpu_rt_runtime", "services.*.cpu_rt_runtime", true, true},
		{"volumes", "driver", "volumes.*", true, false}, // a volume named driver
		{"services.*.deploy.resources.limits", "pids", "services.*.deploy.resources.limits.pids", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.parent+"/"+tt.key, func(t *testing.T) {
			p, r, known := lookup(tt.parent, tt.key)
			if p != tt.wantPattern || known != tt.wantKnown || (r.refuse != "") != tt.wantRefused {
				t.Errorf("lookup: got (%q, refused %v, known %v), want (%q, refused %v, known %v)",
					p, r.refuse != "", known, tt.wantPattern, tt.wantRefused, tt.wantKnown)
			}
		})
	}
}

func TestSuggest(t *testing.T) {
	tests := []struct{ parent, key, want string }{
		{"services.*", "imagee", "image"},
		{"services.*", "enviroment", "environment"},
		{"services.*", "restrat", "restart"},
		{"services.*.deploy", "replics", "replicas"},
		{"", "servics", "services"},
		{"services.*", "completely_different", ""},
	}
	for _, tt := range tests {
		if got := suggest(tt.parent, tt.key); got != tt.want {
			t.Errorf("suggest(%q, %q): got %q, want %q", tt.parent, tt.key, got, tt.want)
		}
	}
}

func TestDistance(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "abc", 0}, {"", "abc", 3}, {"kitten", "sitting", 3}, {"image", "imagee", 1}, {"restrat", "restart", 2},
	}
	for _, tt := range tests {
		if got := distance(tt.a, tt.b); got != tt.want {
			t.Errorf("distance(%q, %q): got %d, want %d", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestNormaliseDirName(t *testing.T) {
	tests := []struct{ dir, want string }{
		{"shop", "shop"},
		{"My_Project.v2", "my-project-v2"},
		{"__weird__", "weird"},
		{"été 2024", "t-2024"},
		{"!!!", ""},
		{strings.Repeat("a", 62) + "_b", strings.Repeat("a", 62)},
	}
	for _, tt := range tests {
		if got := normaliseDirName(tt.dir); got != tt.want {
			t.Errorf("normaliseDirName(%q): got %q, want %q", tt.dir, got, tt.want)
		}
	}
}

func TestProblemString(t *testing.T) {
	tests := []struct {
		p    Problem
		want string
	}{
		{Problem{File: "c.yml", Line: 12, Path: "services.web.privileged", Message: "no"}, "c.yml:12: services.web.privileged: no"},
		{Problem{File: "c.yml", Path: "services", Message: "no"}, "c.yml: services: no"},
		{Problem{File: "c.yml", Line: 3, Message: "invalid YAML"}, "c.yml:3: invalid YAML"},
		{Problem{Message: "bare"}, "bare"},
	}
	for _, tt := range tests {
		if got := tt.p.String(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestSortProblems(t *testing.T) {
	in := []Problem{
		{File: "b.yml", Line: 1, Message: "b1"},
		{File: "a.yml", Message: "a-noline"},
		{File: "a.yml", Line: 9, Message: "a9"},
		{File: "a.yml", Line: 2, Message: "a2"},
		{File: "a.yml", Line: 9, Message: "a9"},
	}
	var got []string
	for _, p := range sortProblems(in, []string{"a.yml", "b.yml"}) {
		got = append(got, p.Message)
	}
	want := []string{"a2", "a9", "a-noline", "b1"}
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}
