package store

import (
	"fmt"
	"strings"
	"time"
)

// The key layout. Every key lives under Root; nothing else in ruche builds
// key strings.
//
//	/ruche/meta/cluster                     cluster id and creation time
//	/ruche/projects/<p>                     ProjectRecord
//	/ruche/services/<p>/<s>                 ServiceRecord (desired state, written by the API)
//	/ruche/svcstatus/<p>/<s>                client.UpdateStatus (written by the controller)
//	/ruche/tasks/<node>/<task-id>           client.Replica without status (assignment, by the controller)
//	/ruche/taskstatus/<task-id>             client.ReplicaStatus (by the agent running it)
//	/ruche/nodes/<node>                     client.Node (registration and status)
//	/ruche/secrets/<p>/<name>               SecretRecord (sealed)
//	/ruche/configs/<p>/<name>               ConfigRecord
//	/ruche/cleanup/<p>                      CleanupRecord (ruche rm in progress)
//	/ruche/events/<unix-nanos>-<seq>        client.Event, with a lease
//	/ruche/tokens/<sha256-hex>              TokenRecord
//	/ruche/jointokens/<sha256-hex>          JoinTokenRecord (single-use, expiring)
//	/ruche/net/networks                     NetworksRecord (the replicas' networks, set with the cluster)
//	/ruche/net/range                        the private range of ruche's networks (first node to ask)
//	/ruche/net/mesh/<node>                  client.MeshNode (a node on ruche's networks)
//	/ruche/net/subnets/<network>/<node>     client.Subnet (a network's /24 on a node)
const Root = "/ruche/"

const (
	ProjectsPrefix   = Root + "projects/"
	ServicesPrefix   = Root + "services/"
	SvcStatusPrefix  = Root + "svcstatus/"
	TasksPrefix      = Root + "tasks/"
	TaskStatusPrefix = Root + "taskstatus/"
	NodesPrefix      = Root + "nodes/"
	SecretsPrefix    = Root + "secrets/"
	ConfigsPrefix    = Root + "configs/"
	CleanupPrefix    = Root + "cleanup/"
	EventsPrefix     = Root + "events/"
	TokensPrefix     = Root + "tokens/"
	JoinTokensPrefix = Root + "jointokens/"
	ManagersPrefix   = Root + "managers/"
	ClusterKey       = Root + "meta/cluster"
	ElectionPrefix   = Root + "election/"
	NetRangeKey      = Root + "net/range"
	NetworksKey      = Root + "net/networks"
	MeshNodesPrefix  = Root + "net/mesh/"
	SubnetsPrefix    = Root + "net/subnets/"
)

func ProjectKey(p string) string            { return ProjectsPrefix + p }
func ServiceKey(p, s string) string         { return ServicesPrefix + p + "/" + s }
func ProjectServicesPrefix(p string) string { return ServicesPrefix + p + "/" }
func SvcStatusKey(p, s string) string       { return SvcStatusPrefix + p + "/" + s }
func TaskKey(node, id string) string        { return TasksPrefix + node + "/" + id }
func NodeTasksPrefix(node string) string    { return TasksPrefix + node + "/" }
func TaskStatusKey(id string) string        { return TaskStatusPrefix + id }
func NodeKey(node string) string            { return NodesPrefix + node }
func SecretKey(p, name string) string       { return SecretsPrefix + p + "/" + name }
func ConfigKey(p, name string) string       { return ConfigsPrefix + p + "/" + name }
func CleanupKey(p string) string            { return CleanupPrefix + p }
func TokenKey(hash string) string           { return TokensPrefix + hash }
func JoinTokenKey(hash string) string       { return JoinTokensPrefix + hash }
func ManagerKey(name string) string         { return ManagersPrefix + name }
func MeshNodeKey(node string) string        { return MeshNodesPrefix + node }
func SubnetKey(network, node string) string { return SubnetsPrefix + network + "/" + node }

// EventKey orders events by time; seq breaks ties within one writer.
func EventKey(t time.Time, seq uint32) string {
	return fmt.Sprintf("%s%020d-%08x", EventsPrefix, t.UnixNano(), seq)
}

// Last returns the last path element of key.
func Last(key string) string { return key[strings.LastIndexByte(key, '/')+1:] }

// SplitService returns the project and service of a ServiceKey or SvcStatusKey.
func SplitService(key string) (project, service string, ok bool) {
	for _, p := range []string{ServicesPrefix, SvcStatusPrefix} {
		if rest, found := strings.CutPrefix(key, p); found {
			project, service, ok = strings.Cut(rest, "/")
			return project, service, ok && service != ""
		}
	}
	return "", "", false
}

// SplitTask returns the node and task id of a TaskKey.
func SplitTask(key string) (node, id string, ok bool) {
	rest, found := strings.CutPrefix(key, TasksPrefix)
	if !found {
		return "", "", false
	}
	node, id, ok = strings.Cut(rest, "/")
	return node, id, ok && id != ""
}
