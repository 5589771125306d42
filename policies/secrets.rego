# Secrets in Git are encrypted (SOPS, Sealed Secrets, External Secrets); a plain `stringData` is a
# leaked credential the moment it is pushed.
package main

import data.lib.k8s
import rego.v1

deny_plaintext_secret contains msg if {
	input.kind == "Secret"
	count(object.get(input, "stringData", {})) > 0
	not input.sops
	msg := sprintf("Secret %s has plaintext stringData; commit it encrypted (SOPS, Sealed Secrets) instead", [k8s.name])
}
