# No privileged containers: they own the node.
package main

import data.lib.k8s
import rego.v1

deny_privileged contains msg if {
	some [field, container] in k8s.containers
	container.securityContext.privileged == true
	msg := sprintf("%s %s: %s %s is privileged", [input.kind, k8s.name, field, container.name])
}
