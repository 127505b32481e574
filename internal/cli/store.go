package cli

import (
	"fmt"
	"io"

	"github.com/ruche-platform/ruche/client"
)

// printStore writes the store lines of `ruche status`: size against the
// quota, then one warning line per problem (near the quota, alarm raised,
// store not answering).
func printStore(w io.Writer, s client.StoreStatus) {
	if s.Error != "" {
		fmt.Fprintf(w, "store: %s, healthy=false\n", s.Endpoint)
		fmt.Fprintf(w, "warning: the store does not answer: %s\n", s.Error)
		return
	}
	inUse := ""
	if s.DBSizeInUse > 0 {
		inUse = fmt.Sprintf(" (%s in use)", bytesHuman(s.DBSizeInUse))
	}
	members := ""
	if s.Members > 1 {
		members = fmt.Sprintf(", %d members", s.Members)
	}
	fmt.Fprintf(w, "store: %s%s, %s of %s%s, revision %d, healthy=%v\n", s.Endpoint, members,
		bytesHuman(s.DBSize), bytesHuman(s.Quota), inUse, s.Revision, s.Healthy)
	for _, warn := range s.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warn)
	}
}
