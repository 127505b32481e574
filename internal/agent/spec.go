package agent

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/ruche-platform/ruche/client"
	"github.com/ruche-platform/ruche/internal/runtime"
	"github.com/ruche-platform/ruche/internal/store"
)

// Names of what the agent creates in the engine.

// ContainerName is "<project>-<service>-<slot>-<nonce>", the nonce being the
// last element of the task ID ("<project>.<service>.<slot>.<nonce>").
func ContainerName(t store.TaskRecord) string {
	nonce := t.ID[strings.LastIndexByte(t.ID, '.')+1:]
	return fmt.Sprintf("%s-%s-%d-%s", t.Project, t.Service, t.Slot, nonce)
}

// NetworkName is the engine network of a project network.
func NetworkName(project, network string) string { return "ruche-" + project + "-" + network }

// VolumeName is the engine volume of a project volume, compose's
// "<project>_<name>"; external volumes keep their own name.
func VolumeName(project, name string, spec client.VolumeSpec) string {
	if spec.External {
		if spec.Name != "" {
			return spec.Name
		}
		return name
	}
	return project + "_" + name
}

// projectLabels are the labels of a project's networks and volumes.
func projectLabels(project string) map[string]string {
	return map[string]string{runtime.LabelManaged: "true", runtime.LabelProject: project}
}

// taskNetworks returns the project networks a task joins, sorted, "default"
// when the spec names none.
func taskNetworks(t store.TaskRecord) []string {
	if len(t.Spec.Networks) == 0 {
		return []string{"default"}
	}
	return slices.Sorted(maps.Keys(t.Spec.Networks))
}

// engineNetworks are the networks to ensure before creating t's container.
func engineNetworks(t store.TaskRecord) []runtime.Network {
	var out []runtime.Network
	for _, n := range taskNetworks(t) {
		spec := t.Networks[n]
		labels := maps.Clone(spec.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, projectLabels(t.Project))
		out = append(out, runtime.Network{Name: NetworkName(t.Project, n), Internal: spec.Internal, Labels: labels})
	}
	return out
}

// engineVolumes are the named volumes to ensure (external ones are only
// referenced, never created).
func engineVolumes(t store.TaskRecord) []runtime.Volume {
	var out []runtime.Volume
	seen := map[string]bool{}
	for _, m := range t.Spec.Mounts {
		if m.Type != client.MountVolume || m.Source == "" || seen[m.Source] {
			continue
		}
		seen[m.Source] = true
		spec := t.Volumes[m.Source]
		if spec.External {
			continue
		}
		labels := maps.Clone(spec.Labels)
		if labels == nil {
			labels = map[string]string{}
		}
		maps.Copy(labels, projectLabels(t.Project))
		out = append(out, runtime.Volume{
			Name: VolumeName(t.Project, m.Source, spec), Driver: spec.Driver, DriverOpts: spec.DriverOpts, Labels: labels,
		})
	}
	return out
}

// containerLabels are the labels the agent finds its containers by.
func containerLabels(t store.TaskRecord) map[string]string {
	labels := maps.Clone(t.Spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, map[string]string{
		runtime.LabelManaged: "true",
		runtime.LabelProject: t.Project,
		runtime.LabelService: t.Service,
		runtime.LabelSlot:    strconv.Itoa(t.Slot),
		runtime.LabelVersion: strconv.FormatInt(t.Version, 10),
		runtime.LabelTask:    t.ID,
		runtime.LabelNode:    t.Node,
	})
	return labels
}

// containerSpec builds the engine request of a task. files are the bind
// mounts of its secrets and configs (see files.go).
func containerSpec(t store.TaskRecord, files []runtime.Mount) runtime.ContainerSpec {
	s := t.Spec
	env := make([]string, 0, len(s.Environment)+4)
	for k, v := range s.Environment {
		env = append(env, k+"="+v)
	}
	env = append(env,
		"RUCHE_PROJECT="+t.Project,
		"RUCHE_SERVICE="+t.Service,
		"RUCHE_REPLICA="+strconv.Itoa(t.Slot),
		"RUCHE_NODE="+t.Node,
	)
	slices.Sort(env)
	grace := s.StopGracePeriod.D()
	if grace <= 0 {
		grace = defaultStopGrace
	}
	spec := runtime.ContainerSpec{
		Name:        ContainerName(t),
		Image:       s.Image,
		Command:     s.Command,
		Entrypoint:  s.Entrypoint,
		Env:         env,
		Labels:      containerLabels(t),
		User:        s.User,
		WorkingDir:  s.WorkingDir,
		Hostname:    s.Hostname,
		TTY:         s.TTY,
		StdinOpen:   s.StdinOpen,
		Init:        s.Init,
		ReadOnly:    s.ReadOnly,
		CapAdd:      s.CapAdd,
		CapDrop:     s.CapDrop,
		ExtraHosts:  s.ExtraHosts,
		StopSignal:  s.StopSignal,
		StopGrace:   grace,
		Ports:       s.Ports,
		Healthcheck: s.Healthcheck,
		NanoCPUs:    int64(s.Resources.Limits.CPUs * 1e9),
		Memory:      s.Resources.Limits.Memory,
	}
	for _, m := range s.Mounts {
		rm := runtime.Mount{Type: m.Type, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}
		if m.Type == client.MountVolume && m.Source != "" {
			rm.Source = VolumeName(t.Project, m.Source, t.Volumes[m.Source])
		}
		spec.Mounts = append(spec.Mounts, rm)
	}
	spec.Mounts = append(spec.Mounts, files...)
	for _, n := range taskNetworks(t) {
		aliases := []string{t.Service}
		aliases = append(aliases, s.Networks[n].Aliases...)
		aliases = append(aliases, strconv.Itoa(t.Slot)+"."+t.Service)
		spec.Networks = append(spec.Networks, runtime.Attachment{Network: NetworkName(t.Project, n), Aliases: aliases})
	}
	return spec
}

// fileTarget is where a secret or config is mounted.
func fileTarget(ref client.FileRef, secret bool) string {
	switch {
	case ref.Target == "" && secret:
		return "/run/secrets/" + ref.Source
	case ref.Target == "":
		return "/" + ref.Source
	case secret && !path.IsAbs(ref.Target):
		return "/run/secrets/" + ref.Target // compose: a relative target is under /run/secrets
	default:
		return ref.Target
	}
}
