package proxy

import (
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
)

// statusClientClosed is logged (never sent) when the client left before
// a response, as nginx does.
const statusClientClosed = 499

var (
	htmlType = []string{"text/html; charset=utf-8"}
	noStore  = []string{"no-store"}
)

var pages = map[int]string{
	http.StatusBadRequest:            page("400 Bad Request", "The request could not be read."),
	http.StatusNotFound:              page("404 Not Found", "No service is published at this address."),
	http.StatusRequestEntityTooLarge: page("413 Content Too Large", "The request body is larger than this service accepts."),
	http.StatusTooManyRequests:       page("429 Too Many Requests", "Too many requests from your address; retry later."),
	http.StatusNotImplemented:        page("501 Not Implemented", "This server does not open tunnels (CONNECT)."),
	http.StatusBadGateway:            page("502 Bad Gateway", "The service did not answer properly."),
	http.StatusServiceUnavailable:    page("503 Service Unavailable", "The service has no replica ready; retry in a moment."),
	http.StatusGatewayTimeout:        page("504 Gateway Timeout", "The service did not answer in time."),
	http.StatusPermanentRedirect:     page("308 Permanent Redirect", "This service is served over HTTPS."),
}

func page(title, text string) string {
	return "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + title +
		"</title></head><body><h1>" + title + "</h1><p>" + text + "</p><hr><p>ruche</p></body></html>\n"
}

// fail sends an error page.
func (p *Proxy) fail(w http.ResponseWriter, status int) outcome {
	body := pages[status]
	h := w.Header()
	h["Content-Type"] = htmlType
	h["Cache-Control"] = noStore
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(status)
	n, _ := w.Write([]byte(body))
	return outcome{status: status, bytes: int64(n)}
}

// unavailable is the answer after holding in vain: 503 with Retry-After.
func (p *Proxy) unavailable(w http.ResponseWriter) outcome {
	secs := max(1, int(p.cfg.HoldTimeout.Seconds()+0.5))
	w.Header()["Retry-After"] = []string{strconv.Itoa(secs)}
	return p.fail(w, http.StatusServiceUnavailable)
}

// failAfter answers for a failed exchange that sent nothing to the client.
func (p *Proxy) failAfter(w http.ResponseWriter, r *http.Request, out outcome) outcome {
	status := http.StatusBadGateway
	switch out.kind {
	case kindTimeout:
		status = http.StatusGatewayTimeout
	case kindTooLarge:
		status = http.StatusRequestEntityTooLarge
	case kindClient:
		out.status = statusClientClosed
		// A stalled body still gets its 408: net/http cancelled the
		// request when the read timed out, but the client is there.
		stalled := errors.Is(out.err, errBodyStalled)
		if stalled || r.Context().Err() == nil {
			status := http.StatusBadRequest
			if stalled {
				status = http.StatusRequestTimeout
			}
			res := p.fail(w, status)
			out.status, out.bytes = res.status, res.bytes
		}
		return out
	}
	res := p.fail(w, status)
	out.status, out.bytes = res.status, res.bytes
	return out
}

// redirect sends a plain HTTP request to HTTPS (308 keeps the method).
func (p *Proxy) redirect(w http.ResponseWriter, r *http.Request) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if strings.IndexByte(host, ':') >= 0 {
		host = "[" + host + "]"
	}
	if p.httpsPort != "" && p.httpsPort != "443" {
		host += ":" + p.httpsPort
	}
	w.Header()["Location"] = []string{"https://" + host + requestTarget(r)}
	p.fail(w, http.StatusPermanentRedirect)
}
