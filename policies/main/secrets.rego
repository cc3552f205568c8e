# No plain-text Secrets in Git: use SealedSecret, ExternalSecret or SOPS-encrypted files.
package main

import rego.v1

import data.lib.k8s

# plaintext-secret: a v1 Secret with data or stringData is only allowed when SOPS-encrypted.
deny contains {"rule": "plaintext-secret", "field": key, "msg": msg} if {
	input.apiVersion == "v1"
	input.kind == "Secret"
	some key in ["data", "stringData"]
	count(object.get(input, key, {})) > 0
	not sops_encrypted
	msg := sprintf("%s: %s is committed in plain text; use a SealedSecret, an ExternalSecret or SOPS", [k8s.name, key])
}

sops_encrypted if input.sops.mac

sops_encrypted if {
	values := [v | some key in ["data", "stringData"]; some v in object.get(input, key, {})]
	count(values) > 0
	every v in values {
		startswith(v, "ENC[")
	}
}
