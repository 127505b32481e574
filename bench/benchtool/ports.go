package main

import (
	"fmt"
	"net"
	"strconv"
)

// portsCmd prints n distinct free TCP ports on 127.0.0.1. All listeners are
// held open until every port is chosen, so the n ports differ.
func portsCmd(args []string) error {
	if len(args) != 1 {
		return fmt.Errorf("%w: ports N", errUsage)
	}
	n, err := strconv.Atoi(args[0])
	if err != nil || n <= 0 {
		return fmt.Errorf("%w: ports N (N > 0)", errUsage)
	}
	ports, err := freePorts(n)
	if err != nil {
		return err
	}
	for _, p := range ports {
		fmt.Println(p)
	}
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
