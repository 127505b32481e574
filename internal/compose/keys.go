package compose

import (
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/schema"
)

// rule says what ruche does with one key of a compose file. Keys are
// patterns in compose-go's notation: "services.*.ports.[].mode", where *
// stands for a name the user chose and [] for an item of a list.
type rule struct {
	// refuse, when set, makes the key a problem: "not supported by ruche
	// (<refuse>)". The text says why, and what to do instead.
	refuse string
	// free marks a value ruche takes as a whole (labels, environment): the
	// keys below it are the user's, not compose's.
	free bool
	// check inspects the value (interpolated when it needs to be); it may
	// report problems, warn, and prune the entry. It returns false when the
	// walk must not descend into the value.
	check func(w *walker, e entry) bool
}

// genericRefusal is the reason given for a key compose knows and ruche has
// no use for, when nothing more specific is written below.
const genericRefusal = "ruche does not implement it"

// rules lists every key ruche honours, and the keys it refuses with a
// reason worth more than genericRefusal. A key compose knows that is not
// listed here is refused with genericRefusal: the list is an allowlist, so
// a key a later compose specification adds is reported until ruche
// implements it. README.md is the same table for operators.
var rules = map[string]rule{
	// Top level.
	"name":     {check: checkProjectName},
	"version":  {check: checkVersion},
	"services": {},
	"include":  {refuse: "pass every file with -f instead"},
	"jobs":     {refuse: "one-off jobs are not supported yet"},
	"models":   {refuse: "AI models are not supported"},

	"volumes":                 {},
	"volumes.*":               {check: checkVolumeDecl},
	"volumes.*.driver":        {},
	"volumes.*.driver_opts":   {free: true},
	"volumes.*.labels":        {free: true},
	"volumes.*.external":      {},
	"volumes.*.external.name": {refuse: "external.name is deprecated in compose: write name: and external: true"},
	"volumes.*.name":          {}, // checked by checkVolumeDecl: external volumes only

	"networks":               {},
	"networks.*":             {},
	"networks.*.internal":    {},
	"networks.*.labels":      {free: true},
	"networks.*.driver":      {check: checkNetworkDriver},
	"networks.*.external":    {refuse: "ruche creates each project's networks itself, spanning every node; a project cannot join a network it did not declare"},
	"networks.*.name":        {refuse: "ruche names a project's networks itself"},
	"networks.*.driver_opts": {refuse: "ruche builds project networks itself and takes no driver options"},
	"networks.*.ipam":        {refuse: "ruche assigns project addresses itself (its IPAM spans every node)"},
	"networks.*.attachable":  {refuse: "only the project's own replicas join its networks"},
	"networks.*.enable_ipv4": {refuse: "project networks are IPv4"},
	"networks.*.enable_ipv6": {refuse: "project networks are IPv4"},

	"secrets":                   {},
	"secrets.*":                 {},
	"secrets.*.file":            {check: checkNeedsFiles},
	"secrets.*.environment":     {},
	"secrets.*.external":        {refuse: "not supported yet: create it in the file, with file: or environment:"},
	"secrets.*.name":            {refuse: "ruche stores secrets per project under their key"},
	"secrets.*.labels":          {refuse: "secrets carry no labels in ruche"},
	"secrets.*.driver":          {refuse: "ruche stores secrets itself, encrypted"},
	"secrets.*.driver_opts":     {refuse: "ruche stores secrets itself, encrypted"},
	"secrets.*.template_driver": {refuse: "secrets are mounted as written"},

	"configs":                   {},
	"configs.*":                 {},
	"configs.*.file":            {check: checkNeedsFiles},
	"configs.*.content":         {},
	"configs.*.environment":     {},
	"configs.*.external":        {refuse: "not supported yet: create it in the file, with file:, content: or environment:"},
	"configs.*.name":            {refuse: "ruche stores configs per project under their key"},
	"configs.*.labels":          {refuse: "configs carry no labels in ruche"},
	"configs.*.template_driver": {refuse: "configs are mounted as written"},

	// Services.
	"services.*":                   {},
	"services.*.image":             {},
	"services.*.command":           {free: true},
	"services.*.entrypoint":        {free: true},
	"services.*.environment":       {free: true},
	"services.*.env_file":          {free: true, check: checkEnvFiles},
	"services.*.label_file":        {free: true, check: checkEnvFiles},
	"services.*.labels":            {free: true, check: checkLabels},
	"services.*.user":              {},
	"services.*.working_dir":       {},
	"services.*.hostname":          {},
	"services.*.tty":               {},
	"services.*.stdin_open":        {},
	"services.*.init":              {},
	"services.*.read_only":         {},
	"services.*.cap_add":           {free: true},
	"services.*.cap_drop":          {free: true},
	"services.*.extra_hosts":       {free: true},
	"services.*.stop_signal":       {},
	"services.*.stop_grace_period": {},
	"services.*.expose":            {free: true}, // informational, see README.md
	"services.*.restart":           {check: checkRestart},
	"services.*.pull_policy":       {check: checkPullPolicy},
	"services.*.extends":           {},
	"services.*.extends.service":   {},
	"services.*.extends.file":      {refuse: "extends works within one file; pass the other file with -f and extend from there"},

	"services.*.ports":                 {},
	"services.*.ports.[]":              {check: checkPort},
	"services.*.ports.[].target":       {},
	"services.*.ports.[].published":    {},
	"services.*.ports.[].protocol":     {},
	"services.*.ports.[].host_ip":      {},
	"services.*.ports.[].mode":         {check: checkPortMode},
	"services.*.ports.[].name":         {refuse: "named ports are not supported yet"},
	"services.*.ports.[].app_protocol": {refuse: "ruche routes HTTP through labels, not port protocols"},

	"services.*.volumes":                          {},
	"services.*.volumes.[]":                       {check: checkVolume},
	"services.*.volumes.[].type":                  {},
	"services.*.volumes.[].source":                {},
	"services.*.volumes.[].target":                {},
	"services.*.volumes.[].read_only":             {},
	"services.*.volumes.[].consistency":           {check: checkConsistency},
	"services.*.volumes.[].bind":                  {},
	"services.*.volumes.[].bind.selinux":          {check: checkSELinux},
	"services.*.volumes.[].bind.propagation":      {refuse: "mount propagation is not supported"},
	"services.*.volumes.[].bind.create_host_path": {refuse: "not supported: the bind source must exist on the node"},
	"services.*.volumes.[].bind.recursive":        {refuse: "recursive read-only mounts are not supported"},
	"services.*.volumes.[].volume":                {},
	"services.*.volumes.[].volume.nocopy":         {refuse: "nocopy is not supported: a new volume is filled from the image"},
	"services.*.volumes.[].volume.subpath":        {refuse: "volume subpaths are not supported yet"},
	"services.*.volumes.[].volume.labels":         {refuse: "put labels on the top-level volume"},
	"services.*.volumes.[].tmpfs":                 {refuse: "tmpfs size and mode are not supported yet"},
	"services.*.volumes.[].image":                 {refuse: "image mounts are not supported"},
	"services.*.tmpfs":                            {check: checkTmpfs},

	"services.*.healthcheck":                {},
	"services.*.healthcheck.test":           {free: true},
	"services.*.healthcheck.interval":       {},
	"services.*.healthcheck.timeout":        {},
	"services.*.healthcheck.start_period":   {},
	"services.*.healthcheck.retries":        {},
	"services.*.healthcheck.disable":        {},
	"services.*.healthcheck.start_interval": {refuse: "start_interval needs Docker 25; ruche supports Docker 20.10"},

	"services.*.depends_on":             {check: checkDependsOn},
	"services.*.depends_on.*":           {},
	"services.*.depends_on.*.condition": {},
	"services.*.depends_on.*.required":  {},
	"services.*.depends_on.*.restart":   {refuse: "ruche does not restart a service when one it depends on restarts"},

	"services.*.secrets":           {},
	"services.*.secrets.[].source": {},
	"services.*.secrets.[].target": {},
	"services.*.secrets.[].uid":    {},
	"services.*.secrets.[].gid":    {},
	"services.*.secrets.[].mode":   {},
	"services.*.configs":           {},
	"services.*.configs.[].source": {},
	"services.*.configs.[].target": {},
	"services.*.configs.[].uid":    {},
	"services.*.configs.[].gid":    {},
	"services.*.configs.[].mode":   {},

	"services.*.networks":                          {},
	"services.*.networks.*":                        {},
	"services.*.networks.*.aliases":                {free: true},
	"services.*.networks.*.ipv4_address":           {refuse: "ruche assigns replica addresses itself"},
	"services.*.networks.*.ipv6_address":           {refuse: "ruche assigns replica addresses itself"},
	"services.*.networks.*.link_local_ips":         {refuse: "ruche assigns replica addresses itself"},
	"services.*.networks.*.mac_address":            {refuse: "ruche assigns replica addresses itself"},
	"services.*.networks.*.priority":               {refuse: "network priorities are not supported"},
	"services.*.networks.*.gw_priority":            {refuse: "network priorities are not supported"},
	"services.*.networks.*.interface_name":         {refuse: "interface names are not supported"},
	"services.*.networks.*.driver_opts":            {refuse: "ruche builds project networks itself and takes no driver options"},
	"services.*.networks.*.use_service_name_alias": {refuse: "the service name is always a DNS name in the project"},

	"services.*.deploy":                                          {},
	"services.*.deploy.replicas":                                 {check: checkReplicas},
	"services.*.deploy.mode":                                     {check: checkDeployMode},
	"services.*.deploy.resources":                                {},
	"services.*.deploy.resources.limits":                         {},
	"services.*.deploy.resources.limits.cpus":                    {},
	"services.*.deploy.resources.limits.memory":                  {},
	"services.*.deploy.resources.limits.pids":                    {refuse: "pids limits are not supported yet"},
	"services.*.deploy.resources.reservations":                   {},
	"services.*.deploy.resources.reservations.cpus":              {},
	"services.*.deploy.resources.reservations.memory":            {},
	"services.*.deploy.resources.reservations.devices":           {refuse: "devices and GPUs are not supported"},
	"services.*.deploy.resources.reservations.generic_resources": {refuse: "generic resources are not supported"},
	"services.*.deploy.restart_policy":                           {},
	"services.*.deploy.restart_policy.condition":                 {},
	"services.*.deploy.restart_policy.delay":                     {},
	"services.*.deploy.restart_policy.max_attempts":              {},
	"services.*.deploy.restart_policy.window":                    {},
	"services.*.deploy.update_config":                            {},
	"services.*.deploy.update_config.parallelism":                {},
	"services.*.deploy.update_config.delay":                      {},
	"services.*.deploy.update_config.failure_action":             {},
	"services.*.deploy.update_config.monitor":                    {},
	"services.*.deploy.update_config.max_failure_ratio":          {},
	"services.*.deploy.update_config.order":                      {},
	"services.*.deploy.rollback_config":                          {},
	"services.*.deploy.rollback_config.parallelism":              {},
	"services.*.deploy.rollback_config.delay":                    {},
	"services.*.deploy.rollback_config.failure_action":           {},
	"services.*.deploy.rollback_config.monitor":                  {},
	"services.*.deploy.rollback_config.max_failure_ratio":        {},
	"services.*.deploy.rollback_config.order":                    {},
	"services.*.deploy.placement":                                {},
	"services.*.deploy.placement.constraints":                    {free: true, check: checkItems},
	"services.*.deploy.placement.preferences":                    {refuse: "use x-ruche: {spread: max_availability} to spread replicas over nodes"},
	"services.*.deploy.placement.max_replicas_per_node":          {refuse: "use x-ruche: {spread: max_availability} to put replicas on distinct nodes"},
	"services.*.deploy.labels":                                   {refuse: "ruche has no service object to label; put labels (traefik.* routing labels too) under the service's labels:, where ruche reads them"},
	"services.*.deploy.endpoint_mode":                            {refuse: "ruche's private DNS always answers with every ready replica"},

	// Services: refused with a specific reason.
	"services.*.build":               {refuse: "ruche does not build images: build and load the image, then refer to it with image:"},
	"services.*.develop":             {refuse: "ruche does not build images or watch files"},
	"services.*.container_name":      {refuse: "ruche names containers <project>-<service>-<slot>-<id>; the service name is already a DNS name in the project network"},
	"services.*.scale":               {refuse: "use deploy.replicas"},
	"services.*.profiles":            {refuse: "ruche deploys every service of the file; split optional services into another file"},
	"services.*.privileged":          {refuse: "a replica may not get every privilege of its node; grant what it needs with cap_add"},
	"services.*.network_mode":        {refuse: "replicas always join their project's networks"},
	"services.*.pid":                 {refuse: "replicas do not share a PID namespace"},
	"services.*.ipc":                 {refuse: "replicas do not share an IPC namespace"},
	"services.*.uts":                 {refuse: "replicas do not share a UTS namespace"},
	"services.*.userns_mode":         {refuse: "user namespace settings belong to the node's Docker"},
	"services.*.cgroup":              {refuse: "replicas do not share a cgroup namespace"},
	"services.*.cgroup_parent":       {refuse: "ruche places replicas in cgroups itself"},
	"services.*.devices":             {refuse: "host devices tie a replica to one machine and are not supported"},
	"services.*.device_cgroup_rules": {refuse: "host devices are not supported"},
	"services.*.gpus":                {refuse: "GPUs are not supported"},
	"services.*.security_opt":        {refuse: "a project may not change a container's security profile"},
	"services.*.logging":             {refuse: "ruche collects replica logs itself (ruche logs)"},
	"services.*.sysctls":             {refuse: "kernel parameters are not supported"},
	"services.*.ulimits":             {refuse: "ulimits are not supported yet"},
	"services.*.platform":            {refuse: "ruche runs the image built for each node's platform"},
	"services.*.runtime":             {refuse: "replicas run with the node's default runtime"},
	"services.*.isolation":           {refuse: "replicas run with the node's default isolation"},
	"services.*.links":               {refuse: "not needed: services reach each other by name on the project network"},
	"services.*.external_links":      {refuse: "a project only reaches its own services"},
	"services.*.volumes_from":        {refuse: "declare a named volume and mount it in both services"},
	"services.*.dns":                 {refuse: "ruche runs the DNS of project networks"},
	"services.*.dns_search":          {refuse: "ruche runs the DNS of project networks"},
	"services.*.dns_opt":             {refuse: "ruche runs the DNS of project networks"},
	"services.*.domainname":          {refuse: "ruche names replicas in the project's DNS zone"},
	"services.*.mac_address":         {refuse: "ruche assigns replica addresses itself"},
	"services.*.cpus":                {refuse: "use deploy.resources.limits.cpus"},
	"services.*.cpu_shares":          {refuse: "use deploy.resources.limits.cpus and reservations.cpus"},
	"services.*.cpu_quota":           {refuse: "use deploy.resources.limits.cpus"},
	"services.*.cpu_period":          {refuse: "use deploy.resources.limits.cpus"},
	"services.*.cpuset":              {refuse: "replicas are not pinned to CPUs"},
	"services.*.mem_limit":           {refuse: "use deploy.resources.limits.memory"},
	"services.*.mem_reservation":     {refuse: "use deploy.resources.reservations.memory"},
	"services.*.memswap_limit":       {refuse: "swap settings are not supported"},
	"services.*.mem_swappiness":      {refuse: "swap settings are not supported"},
	"services.*.pids_limit":          {refuse: "pids limits are not supported yet"},
	"services.*.shm_size":            {refuse: "not supported yet: mount a tmpfs on /dev/shm"},
	"services.*.oom_kill_disable":    {refuse: "the kernel's OOM killer always applies"},
	"services.*.oom_score_adj":       {refuse: "the kernel's OOM killer always applies"},
	"services.*.group_add":           {refuse: "supplementary groups are not supported yet"},
	"services.*.storage_opt":         {refuse: "storage options belong to the node's Docker"},
	"services.*.annotations":         {refuse: "annotations are not supported; use labels"},
	"services.*.attach":              {refuse: "read replica logs with ruche logs"},
	"services.*.pre_start":           {refuse: "lifecycle hooks are not supported"},
	"services.*.post_start":          {refuse: "lifecycle hooks are not supported"},
	"services.*.pre_stop":            {refuse: "lifecycle hooks are not supported"},
	"services.*.provider":            {refuse: "provider services are not supported"},
	"services.*.models":              {refuse: "AI models are not supported"},
	"services.*.use_api_socket":      {refuse: "replicas never get the node's Docker socket"},
	"services.*.credential_spec":     {refuse: "Windows containers are not supported"},
	"services.*.blkio_config":        {refuse: "block I/O limits are not supported"},
	"services.*.pull_refresh_after":  {refuse: "ruche uses a locally present image and pulls a missing one"},
}

// userDefined are the mappings whose keys are names the user chose, where a
// key starting with x- is a name and not an extension (compose-go's
// userDefinedKeys).
var userDefined = map[string]bool{
	"services":              true,
	"services.*.depends_on": true,
	"volumes":               true,
	"networks":              true,
	"secrets":               true,
	"configs":               true,
}

// known is every pattern compose's schema declares, plus ours.
var known = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{}
	for _, p := range schema.AttributePaths() {
		m[string(p)] = true
	}
	for p := range rules {
		m[p] = true
	}
	return m
})

// parents is every pattern that has keys below it, so the walker knows a
// mapping or a list is expected there.
var parents = sync.OnceValue(func() map[string]bool {
	m := map[string]bool{"": true}
	for p := range known() {
		for i := len(p) - 1; i > 0; i-- {
			if p[i] == '.' {
				m[p[:i]] = true
			}
		}
	}
	return m
})

func join(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// lookup finds the rule for key under the mapping at pattern parent. It
// returns the key's pattern, its rule, and false when compose does not
// know the key at all.
func lookup(parent, key string) (string, rule, bool) {
	for _, p := range []string{join(parent, key), join(parent, "*")} {
		if r, ok := rules[p]; ok {
			return p, r, true
		}
		if known()[p] {
			return p, rule{refuse: genericRefusal}, true
		}
	}
	return "", rule{}, false
}

// suggest returns the known key under parent closest to key, or "" when
// none is close enough to be the one meant.
func suggest(parent, key string) string {
	best, bestDist := "", 3
	prefix := join(parent, "")
	if parent == "" {
		prefix = ""
	}
	for p := range known() {
		if !strings.HasPrefix(p, prefix) {
			continue
		}
		cand := p[len(prefix):]
		if cand == "*" || cand == "[]" || strings.Contains(cand, ".") {
			continue
		}
		if d := distance(key, cand); d < bestDist || (d == bestDist && best != "" && cand < best) {
			best, bestDist = cand, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
