# Ingress TLS: every routed host is served over HTTPS.
package main

import rego.v1

import data.lib.k8s

# ingress-tls: each host of an Ingress is listed under spec.tls.
deny contains {"rule": "ingress-tls", "field": sprintf("spec.rules[%d].host", [i]), "msg": msg} if {
	input.kind == "Ingress"
	some i, rule in input.spec.rules
	not tls_host(rule.host)
	msg := sprintf("%s: host %s is not covered by spec.tls", [k8s.name, rule.host])
}

deny contains {"rule": "ingress-tls", "field": "spec.tls", "msg": msg} if {
	input.kind == "Ingress"
	some rule in input.spec.rules
	not rule.host
	not input.spec.tls
	msg := sprintf("%s: has no spec.tls", [k8s.name])
}

tls_host(host) if {
	some t in input.spec.tls
	host in t.hosts
}

# A wildcard certificate covers one label.
tls_host(host) if {
	some t in input.spec.tls
	some pattern in t.hosts
	startswith(pattern, "*.")
	suffix := substring(pattern, 1, -1)
	endswith(host, suffix)
	not contains(trim_suffix(host, suffix), ".")
}

# ingress-tls for Traefik IngressRoutes: routes on the secure entry point need spec.tls; a
# plain-HTTP route must redirect (use a middleware).
deny contains {"rule": "ingress-tls", "field": "spec.tls", "msg": msg} if {
	input.kind == "IngressRoute"
	not input.spec.tls
	not web_only
	msg := sprintf("%s: has no spec.tls", [k8s.name])
}

deny contains {"rule": "ingress-tls", "field": sprintf("spec.routes[%d]", [i]), "msg": msg} if {
	input.kind == "IngressRoute"
	not input.spec.tls
	web_only
	some i, r in input.spec.routes
	count(object.get(r, "middlewares", [])) == 0
	msg := sprintf("%s: route %s serves plain HTTP without a redirect middleware", [k8s.name, r.match])
}

web_only if {
	count(object.get(input.spec, "entryPoints", [])) > 0
	every e in input.spec.entryPoints {
		e == "web"
	}
}
