package controller

import (
	"crypto/rand"
	"strconv"
	"strings"
)

// svcKey names a service.
type svcKey struct{ project, service string }

func (k svcKey) String() string { return k.project + "/" + k.service }

// nonceLen is the length of the random part of a task ID: 8 base32
// characters, 40 bits, plenty for the replicas of one slot.
const nonceLen = 8

// newTaskID returns "<project>.<service>.<slot>.<nonce>".
func newTaskID(k svcKey, slot int) string {
	return k.project + "." + k.service + "." + strconv.Itoa(slot) + "." + strings.ToLower(rand.Text()[:nonceLen])
}

// parseTaskID splits a task ID. Project names have no dots (compose
// normalises them); service names may, so the service is what lies between
// the first dot and the slot.
func parseTaskID(id string) (k svcKey, slot int, ok bool) {
	project, rest, ok1 := strings.Cut(id, ".")
	i := strings.LastIndexByte(rest, '.')
	if !ok1 || i < 0 {
		return svcKey{}, 0, false
	}
	rest = rest[:i]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return svcKey{}, 0, false
	}
	slot, err := strconv.Atoi(rest[j+1:])
	if err != nil || project == "" || j == 0 {
		return svcKey{}, 0, false
	}
	return svcKey{project, rest[:j]}, slot, true
}
