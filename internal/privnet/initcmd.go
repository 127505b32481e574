package privnet

import (
	"fmt"

	"github.com/ruche-platform/ruche/internal/netinit"
)

// Command is the entrypoint of a container on ruche's networks: the init,
// then what the container would have run, from the compose file's
// entrypoint and command and the image's, by the engine's rules (an
// entrypoint given in the file drops the image's command).
func Command(fileEntrypoint, fileCommand, imageEntrypoint, imageCmd []string) ([]string, error) {
	var argv []string
	switch {
	case len(fileEntrypoint) > 0:
		argv = append(append(argv, fileEntrypoint...), fileCommand...)
	case len(fileCommand) > 0:
		argv = append(append(argv, imageEntrypoint...), fileCommand...)
	default:
		argv = append(append(argv, imageEntrypoint...), imageCmd...)
	}
	if len(argv) == 0 {
		return nil, fmt.Errorf("no command: the image has none and the file gives none")
	}
	return append([]string{netinit.InitPath}, argv...), nil
}
