package main

import "errors"

var (
	errUsage        = errors.New("usage: benchtool converge|ports|rss|report (see main.go)")
	errPrecondition = errors.New("precondition")
	errNotConverged = errors.New("not converged")
	errCommand      = errors.New("command failed")
	errParse        = errors.New("parse")
)
