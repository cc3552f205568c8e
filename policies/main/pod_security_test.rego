package main

import rego.v1

test_pss_run_as_non_root_allowed if {
	not denied("pss-run-as-non-root") with input as good_deployment
}

test_pss_run_as_non_root_denied if {
	denied("pss-run-as-non-root") with input as deployment_with([{"op": "remove", "path": "/spec/template/spec/securityContext/runAsNonRoot"}])
}

test_pss_run_as_non_root_container_overrides_pod if {
	denied("pss-run-as-non-root") with input as deployment_with([{"op": "add", "path": concat("", [container_path, "/securityContext/runAsNonRoot"]), "value": false}])
}

test_pss_run_as_non_root_root_user_denied if {
	denied("pss-run-as-non-root") with input as deployment_with([{"op": "add", "path": "/spec/template/spec/securityContext/runAsUser", "value": 0}])
}

test_pss_privilege_escalation_allowed if {
	not denied("pss-privilege-escalation") with input as good_deployment
}

test_pss_privilege_escalation_denied if {
	denied("pss-privilege-escalation") with input as deployment_with([{"op": "remove", "path": concat("", [container_path, "/securityContext/allowPrivilegeEscalation"])}])
}

test_pss_privileged_allowed if {
	not denied("pss-privileged") with input as good_deployment
}

test_pss_privileged_denied if {
	denied("pss-privileged") with input as deployment_with([{"op": "add", "path": concat("", [container_path, "/securityContext/privileged"]), "value": true}])
}

test_pss_capabilities_allowed if {
	not denied("pss-capabilities") with input as deployment_with([{"op": "add", "path": concat("", [container_path, "/securityContext/capabilities/add"]), "value": ["NET_BIND_SERVICE"]}])
}

test_pss_capabilities_denied if {
	denied("pss-capabilities") with input as deployment_with([{"op": "replace", "path": concat("", [container_path, "/securityContext/capabilities/drop"]), "value": ["NET_RAW"]}])
}

test_pss_capabilities_added_denied if {
	denied("pss-capabilities") with input as deployment_with([{"op": "add", "path": concat("", [container_path, "/securityContext/capabilities/add"]), "value": ["SYS_ADMIN"]}])
}

test_pss_seccomp_allowed if {
	not denied("pss-seccomp") with input as good_deployment
}

test_pss_seccomp_denied if {
	denied("pss-seccomp") with input as deployment_with([{"op": "replace", "path": "/spec/template/spec/securityContext/seccompProfile/type", "value": "Unconfined"}])
}

test_pss_host_namespaces_allowed if {
	not denied("pss-host-namespaces") with input as deployment_with([{"op": "add", "path": "/spec/template/spec/hostNetwork", "value": false}])
}

test_pss_host_namespaces_denied if {
	denied("pss-host-namespaces") with input as deployment_with([{"op": "add", "path": "/spec/template/spec/hostPID", "value": true}])
}

test_pss_host_path_allowed if {
	not denied("pss-host-path") with input as deployment_with([{"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "tmp", "emptyDir": {}}]}])
}

test_pss_host_path_denied if {
	denied("pss-host-path") with input as deployment_with([{"op": "add", "path": "/spec/template/spec/volumes", "value": [{"name": "root", "hostPath": {"path": "/"}}]}])
}

test_pss_applies_to_cronjob_pods if {
	cronjob := {
		"apiVersion": "batch/v1",
		"kind": "CronJob",
		"metadata": {"name": "nightly"},
		"spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "job", "image": "busybox:1.36"}]}}}}},
	}
	denied("pss-run-as-non-root") with input as cronjob
}

test_pss_findings_point_at_the_pod_setting_when_the_pod_sets_it if {
	d := deployment_with([{"op": "replace", "path": "/spec/template/spec/securityContext/runAsNonRoot", "value": false}])
	some r in deny with input as d
	r.rule == "pss-run-as-non-root"
	r.field == "spec.template.spec.securityContext.runAsNonRoot"
}
