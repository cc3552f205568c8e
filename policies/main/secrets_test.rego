package main

import rego.v1

secret(body) := object.union({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "shop"}}, body)

test_plaintext_secret_allowed if {
	not denied("plaintext-secret") with input as secret({"type": "kubernetes.io/service-account-token"})
}

test_plaintext_secret_sops_allowed if {
	not denied("plaintext-secret") with input as secret({"stringData": {"password": "ENC[AES256_GCM,data:abc,type:str]"}, "sops": {"mac": "ENC[AES256_GCM,data:xyz]"}})
}

test_plaintext_secret_sealed_allowed if {
	not denied("plaintext-secret") with input as {"apiVersion": "bitnami.com/v1alpha1", "kind": "SealedSecret", "metadata": {"name": "db"}, "spec": {"encryptedData": {"password": "AgB..."}}}
}

test_plaintext_secret_denied if {
	denied("plaintext-secret") with input as secret({"data": {"password": "aHVudGVyMg=="}})
}

test_plaintext_secret_string_data_denied if {
	denied("plaintext-secret") with input as secret({"stringData": {"password": "hunter2"}})
}
