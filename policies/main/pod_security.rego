# Pod security, Kubernetes "restricted" profile: what a compromised container can reach.
package main

import rego.v1

import data.lib.k8s

# pss-run-as-non-root: every container runs as a non-root user (runAsNonRoot: true on the
# container or the pod, and no runAsUser: 0).
deny contains {"rule": "pss-run-as-non-root", "field": k8s.setting_path(c, "runAsNonRoot"), "msg": msg} if {
	some c in k8s.containers
	not k8s.setting(c, "runAsNonRoot") == true
	msg := sprintf("%s: container %s may run as root; set securityContext.runAsNonRoot: true", [k8s.name, c[1].name])
}

deny contains {"rule": "pss-run-as-non-root", "field": k8s.setting_path(c, "runAsUser"), "msg": msg} if {
	some c in k8s.containers
	k8s.setting(c, "runAsUser") == 0
	msg := sprintf("%s: container %s sets runAsUser: 0 (root)", [k8s.name, c[1].name])
}

# pss-privilege-escalation: allowPrivilegeEscalation must be false on every container.
deny contains {"rule": "pss-privilege-escalation", "field": sprintf("%s.securityContext.allowPrivilegeEscalation", [c[0]]), "msg": msg} if {
	some c in k8s.containers
	not c[1].securityContext.allowPrivilegeEscalation == false
	msg := sprintf("%s: container %s must set securityContext.allowPrivilegeEscalation: false", [k8s.name, c[1].name])
}

# pss-privileged: no privileged containers.
deny contains {"rule": "pss-privileged", "field": sprintf("%s.securityContext.privileged", [c[0]]), "msg": msg} if {
	some c in k8s.containers
	c[1].securityContext.privileged == true
	msg := sprintf("%s: container %s is privileged", [k8s.name, c[1].name])
}

# pss-capabilities: drop ALL capabilities; only NET_BIND_SERVICE may be added back.
deny contains {"rule": "pss-capabilities", "field": sprintf("%s.securityContext.capabilities.drop", [c[0]]), "msg": msg} if {
	some c in k8s.containers
	not "ALL" in object.get(c[1], ["securityContext", "capabilities", "drop"], [])
	msg := sprintf("%s: container %s must drop ALL capabilities", [k8s.name, c[1].name])
}

deny contains {"rule": "pss-capabilities", "field": sprintf("%s.securityContext.capabilities.add", [c[0]]), "msg": msg} if {
	some c in k8s.containers
	some cap in object.get(c[1], ["securityContext", "capabilities", "add"], [])
	cap != "NET_BIND_SERVICE"
	msg := sprintf("%s: container %s adds capability %s", [k8s.name, c[1].name, cap])
}

# pss-seccomp: a seccomp profile of type RuntimeDefault or Localhost, on the container or the pod.
deny contains {"rule": "pss-seccomp", "field": k8s.setting_path(c, "seccompProfile"), "msg": msg} if {
	some c in k8s.containers
	not k8s.setting(c, "seccompProfile").type in {"RuntimeDefault", "Localhost"}
	msg := sprintf("%s: container %s needs seccompProfile.type RuntimeDefault or Localhost", [k8s.name, c[1].name])
}

# pss-host-namespaces: no hostNetwork, hostPID or hostIPC.
deny contains {"rule": "pss-host-namespaces", "field": sprintf("%s.%s", [ps[0], key]), "msg": msg} if {
	some ps in k8s.pod_specs
	some key in ["hostNetwork", "hostPID", "hostIPC"]
	ps[1][key] == true
	msg := sprintf("%s: pod shares the node's namespaces (%s: true)", [k8s.name, key])
}

# pss-host-path: no hostPath volumes.
deny contains {"rule": "pss-host-path", "field": sprintf("%s.volumes[%d].hostPath", [ps[0], i]), "msg": msg} if {
	some ps in k8s.pod_specs
	some i, v in ps[1].volumes
	v.hostPath
	msg := sprintf("%s: volume %s mounts a path of the node (hostPath %s)", [k8s.name, v.name, v.hostPath.path])
}
