package main_test

import rego.v1

test_plaintext_secret_is_denied if {
	secret := {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "hunter2"}}
	count(data.main.deny_plaintext_secret) == 1 with input as secret
}

test_sops_secret_is_allowed if {
	secret := {"kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "ENC[AES256_GCM,data:x]"}, "sops": {"version": "3.8.1"}}
	count(data.main.deny_plaintext_secret) == 0 with input as secret
}
