package compose

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseRule(t *testing.T) {
	host := func(v string) matcher { return matcher{name: "Host", value: v} }
	prefix := func(v string) matcher { return matcher{name: "PathPrefix", value: v} }
	tests := []struct {
		rule string
		want []ruleTerm
	}{
		{"Host(`a.org`)", []ruleTerm{{host("a.org")}}},
		{"Host(`a.org`) || Host(`b.org`)", []ruleTerm{{host("a.org")}, {host("b.org")}}},
		{"Host(`a.org`,`b.org`)", []ruleTerm{{host("a.org")}, {host("b.org")}}},
		{`Host("a.org") && PathPrefix("/x")`, []ruleTerm{{host("a.org"), prefix("/x")}}},
		{"  Host( `a.org` )&&PathPrefix(`/x`)  ", []ruleTerm{{host("a.org"), prefix("/x")}}},
		{"Host(`a.org`) && (PathPrefix(`/x`) || PathPrefix(`/y`))", []ruleTerm{
			{host("a.org"), prefix("/x")}, {host("a.org"), prefix("/y")},
		}},
		{"(Host(`a.org`) || Host(`b.org`)) && PathPrefix(`/x`) || Host(`c.org`)", []ruleTerm{
			{host("a.org"), prefix("/x")}, {host("b.org"), prefix("/x")}, {host("c.org")},
		}},
		// && binds tighter than ||.
		{"Host(`a.org`) || Host(`b.org`) && PathPrefix(`/x`)", []ruleTerm{
			{host("a.org")}, {host("b.org"), prefix("/x")},
		}},
		{"Header(`X-Env`, `prod`) && Host(`a.org`)", []ruleTerm{
			{{name: "Header", value: "X-Env, prod"}, host("a.org")},
		}},
		{`Host("a\x2eorg")`, []ruleTerm{{host("a.org")}}},
		{"Method()", []ruleTerm{{{name: "Method"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			got, err := parseRule(tt.rule)
			if err != nil {
				t.Fatalf("parseRule: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseRuleErrors(t *testing.T) {
	tests := []struct {
		rule, want string
	}{
		{"", "the rule ends where a matcher was expected"},
		{"Host(`a.org`) ||", "the rule ends where a matcher was expected"},
		{"!Host(`a.org`)", "! (not) is not supported"},
		{"Host(`a.org`) && !PathPrefix(`/x`)", "! (not) is not supported"},
		{"Host(`a.org`", "missing , or ) after a value of Host"},
		{"(Host(`a.org`)", "missing )"},
		{"Host(`a.org`))", `unexpected ")"`},
		{"Host('a.org')", "single quotes are not Traefik's"},
		{"Host(a.org)", `unexpected "a.org)"`},
		{"Host(`a.org)", "unclosed `"},
		{`Host("a.org)`, `unclosed "`},
		{`Host("a\qb")`, `bad string "a\qb"`},
		{"Host `a.org`", "Host must be followed by ("},
		{"Host:a.org", "Host must be followed by ("},
		{"&& Host(`a.org`)", `unexpected "&& Host(`},
		{strings.Repeat("(Host(`a`) || Host(`b`)) && ", 7) + "Host(`c`)", "more than 64 alternatives"},
		{strings.Repeat("Host(`a`) || ", 64) + "Host(`c`)", "more than 64 alternatives"},
	}
	for _, tt := range tests {
		t.Run(tt.rule, func(t *testing.T) {
			_, err := parseRule(tt.rule)
			if err == nil {
				t.Fatalf("parseRule(%q) succeeded, want an error with %q", tt.rule, tt.want)
			}
			if !errors.Is(err, errRuleSyntax) {
				t.Errorf("error %v does not wrap errRuleSyntax", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %q, want it to contain %q", err, tt.want)
			}
		})
	}
}
