package main

import "errors"

var (
	errUsage     = errors.New("usage: ingresstool load|wrk|h2load|gobench|addrs|report (see main.go)")
	errParse     = errors.New("parse")
	errStatus    = errors.New("unexpected status")
	errBody      = errors.New("unexpected body")
	errNoReplica = errors.New("no ready replica")
)
