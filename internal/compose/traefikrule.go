package compose

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
)

// A Traefik router rule is a boolean expression of matchers:
//
//	Host(`a.org`) || Host(`b.org`)
//	Host(`a.org`) && (PathPrefix(`/api`) || PathPrefix(`/ws`))
//
// ruche routes by host and path prefix, so a rule is honoured when it is,
// once put in disjunctive normal form, a union of terms that each name one
// host and at most one path prefix. Values are Go string literals: raw
// (`...`) or interpreted ("..."), as in Traefik.

// matcher is one call in a rule, with a single value: Host(`a`, `b`)
// (Traefik v2 syntax) is read as Host(`a`) || Host(`b`).
type matcher struct {
	name  string // as written: "Host", "PathPrefix", "Header"...
	value string
}

// ruleTerm is a conjunction of matchers.
type ruleTerm []matcher

// maxRuleTerms bounds the expansion of a rule into terms: a rule that
// expands further is not one a person wrote for routing by host.
const maxRuleTerms = 64

// errRuleSyntax wraps every syntax error of a rule.
var errRuleSyntax = errors.New("invalid rule")

// parseRule parses a Traefik rule into its disjunctive normal form. A
// negation (!) is an error: ruche cannot express "every host but".
func parseRule(s string) ([]ruleTerm, error) {
	p := &ruleParser{s: s}
	terms, err := p.or()
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected %q", p.rest())
	}
	return terms, nil
}

type ruleParser struct {
	s string
	i int
}

func (p *ruleParser) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errRuleSyntax, fmt.Sprintf(format, args...))
}

// rest is what is left to read, shortened for messages.
func (p *ruleParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *ruleParser) space() {
	for p.i < len(p.s) && unicode.IsSpace(rune(p.s[p.i])) {
		p.i++
	}
}

// eat consumes tok if it comes next.
func (p *ruleParser) eat(tok string) bool {
	p.space()
	if strings.HasPrefix(p.s[p.i:], tok) {
		p.i += len(tok)
		return true
	}
	return false
}

func (p *ruleParser) or() ([]ruleTerm, error) {
	terms, err := p.and()
	if err != nil {
		return nil, err
	}
	for p.eat("||") {
		more, err := p.and()
		if err != nil {
			return nil, err
		}
		terms = append(terms, more...)
		if len(terms) > maxRuleTerms {
			return nil, p.errorf("the rule expands to more than %d alternatives", maxRuleTerms)
		}
	}
	return terms, nil
}

func (p *ruleParser) and() ([]ruleTerm, error) {
	terms, err := p.unary()
	if err != nil {
		return nil, err
	}
	for p.eat("&&") {
		right, err := p.unary()
		if err != nil {
			return nil, err
		}
		if len(terms)*len(right) > maxRuleTerms {
			return nil, p.errorf("the rule expands to more than %d alternatives", maxRuleTerms)
		}
		var product []ruleTerm
		for _, l := range terms {
			for _, r := range right {
				t := make(ruleTerm, 0, len(l)+len(r))
				product = append(product, append(append(t, l...), r...))
			}
		}
		terms = product
	}
	return terms, nil
}

func (p *ruleParser) unary() ([]ruleTerm, error) {
	p.space()
	switch {
	case p.i >= len(p.s):
		return nil, p.errorf("the rule ends where a matcher was expected")
	case p.eat("!"):
		return nil, p.errorf("! (not) is not supported: ruche routes the hosts a rule names, not every host but some")
	case p.eat("("):
		terms, err := p.or()
		if err != nil {
			return nil, err
		}
		if !p.eat(")") {
			return nil, p.errorf("missing )")
		}
		return terms, nil
	}
	return p.matcher()
}

// matcher reads Name(`value`, ...) and returns one term per value.
func (p *ruleParser) matcher() ([]ruleTerm, error) {
	start := p.i
	for p.i < len(p.s) && (isLetter(p.s[p.i]) || p.i > start && p.s[p.i] >= '0' && p.s[p.i] <= '9') {
		p.i++
	}
	name := p.s[start:p.i]
	if name == "" {
		return nil, p.errorf("unexpected %q where a matcher like Host(`example.org`) was expected", p.rest())
	}
	if !p.eat("(") {
		return nil, p.errorf("%s must be followed by (", name)
	}
	var values []string
	for {
		p.space()
		if len(values) == 0 && p.eat(")") {
			break
		}
		v, err := p.literal()
		if err != nil {
			return nil, err
		}
		values = append(values, v)
		if p.eat(")") {
			break
		}
		if !p.eat(",") {
			return nil, p.errorf("missing , or ) after a value of %s", name)
		}
	}
	if len(values) == 0 {
		return []ruleTerm{{{name: name}}}, nil
	}
	if !multiValue(name) {
		terms := make([]ruleTerm, len(values))
		for i, v := range values {
			terms[i] = ruleTerm{{name: name, value: v}}
		}
		return terms, nil
	}
	// Header(`key`, `value`) and the like take their values together.
	return []ruleTerm{{{name: name, value: strings.Join(values, ", ")}}}, nil
}

// multiValue are the matchers whose values go together, not one each.
func multiValue(name string) bool {
	switch strings.ToLower(name) {
	case "header", "headerregexp", "headers", "headersregexp", "query", "queryregexp":
		return true
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// literal reads a Go string literal, raw or interpreted.
func (p *ruleParser) literal() (string, error) {
	p.space()
	if p.i >= len(p.s) {
		return "", p.errorf("the rule ends inside a matcher")
	}
	q := p.s[p.i]
	if q != '`' && q != '"' {
		if q == '\'' {
			return "", p.errorf("single quotes are not Traefik's: quote values with backticks")
		}
		return "", p.errorf("unexpected %q: quote values with backticks, like Host(`example.org`)", p.rest())
	}
	for j := p.i + 1; j < len(p.s); j++ {
		switch {
		case p.s[j] == '\\' && q == '"':
			j++
		case p.s[j] == q:
			v, err := strconv.Unquote(p.s[p.i : j+1])
			if err != nil {
				return "", p.errorf("bad string %s", p.s[p.i:j+1])
			}
			p.i = j + 1
			return v, nil
		}
	}
	return "", p.errorf("unclosed %c", q)
}
