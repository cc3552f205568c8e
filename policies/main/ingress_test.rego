package main

import rego.v1

ingress(tls) := {
	"apiVersion": "networking.k8s.io/v1",
	"kind": "Ingress",
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": object.union(
		{"rules": [{"host": "shop.example.com", "http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]},
		tls,
	),
}

route(spec) := {
	"apiVersion": "traefik.io/v1alpha1",
	"kind": "IngressRoute",
	"metadata": {"name": "web", "namespace": "shop"},
	"spec": spec,
}

test_ingress_tls_allowed if {
	not denied("ingress-tls") with input as ingress({"tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}]})
}

test_ingress_tls_wildcard_allowed if {
	not denied("ingress-tls") with input as ingress({"tls": [{"hosts": ["*.example.com"], "secretName": "wild"}]})
}

test_ingress_tls_denied if {
	denied("ingress-tls") with input as ingress({})
}

test_ingress_tls_other_host_denied if {
	denied("ingress-tls") with input as ingress({"tls": [{"hosts": ["other.example.com"]}]})
}

test_ingress_tls_ingressroute_allowed if {
	not denied("ingress-tls") with input as route({"entryPoints": ["websecure"], "routes": [{"match": "Host(`a.example.com`)", "kind": "Rule"}], "tls": {"secretName": "a"}})
}

test_ingress_tls_ingressroute_redirect_allowed if {
	not denied("ingress-tls") with input as route({"entryPoints": ["web"], "routes": [{"match": "Host(`a.example.com`)", "kind": "Rule", "middlewares": [{"name": "redirect-https"}]}]})
}

test_ingress_tls_ingressroute_denied if {
	denied("ingress-tls") with input as route({"entryPoints": ["websecure"], "routes": [{"match": "Host(`a.example.com`)", "kind": "Rule"}]})
}

test_ingress_tls_ingressroute_plain_http_denied if {
	denied("ingress-tls") with input as route({"entryPoints": ["web"], "routes": [{"match": "Host(`a.example.com`)", "kind": "Rule"}]})
}
