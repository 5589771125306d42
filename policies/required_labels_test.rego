package main_test

import rego.v1

test_missing_name_label_is_denied if {
	unlabelled := json.remove(deployment(good_container), ["metadata/labels"])
	data.main.deny_required_labels["Deployment web must have the label app.kubernetes.io/name"] with input as unlabelled
}

test_configmaps_need_no_label if {
	count(data.main.deny_required_labels) == 0 with input as {"kind": "ConfigMap", "metadata": {"name": "c"}}
}

test_the_label_list_is_a_parameter if {
	data.main.deny_required_labels["Deployment web must have the label team"] with input as deployment(good_container)
		with data.stategate_builtin.required_labels.labels as ["team"]
}
