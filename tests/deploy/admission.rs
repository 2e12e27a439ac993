//! deploy/admission-policy.yaml, evaluated: its CEL expressions run (the `cel` crate) against
//! the pods the API server would validate — tenant-bridge's own, as spin-operator v0.6.1 builds
//! it and the RuntimeClass admission controller completes it, and foreign pods that try each
//! route to the identity's node pool. Issue 20, defect 3.

use std::collections::HashMap;

use super::*;

/// The rendered policy (kubectl kustomize of a copy of deploy/).
fn rendered() -> Vec<Value> {
    let kubectl = kubectl();
    let tmp = TempDir::new("admission");
    kustomize(&kubectl, &deploy_copy(&tmp))
}

fn find<'a>(built: &'a [Value], kind: &str) -> &'a Value {
    let found: Vec<&Value> = built.iter().filter(|d| d["kind"] == kind).collect();
    assert_eq!(found.len(), 1, "one {kind} rendered");
    found[0]
}

/// One CEL expression over `object`, `oldObject`, `request` and `variables`, as the API server
/// binds them for a ValidatingAdmissionPolicy (kubernetes staging/src/k8s.io/apiserver
/// pkg/admission/plugin/policy/validating: `variables` are evaluated in order, each seeing the
/// ones before it).
fn eval(expression: &str, bindings: &HashMap<String, cel::Value>) -> cel::Value {
    let program = cel::Program::compile(expression)
        .unwrap_or_else(|e| panic!("CEL does not compile: {expression}: {e:?}"));
    let mut context = cel::Context::default();
    for (name, value) in bindings {
        context.add_variable_from_value(name.clone(), value.clone());
    }
    program
        .execute(&context)
        .unwrap_or_else(|e| panic!("CEL error in {expression}: {e:?}"))
}

/// The messages of the validations that refuse a request; empty when it is admitted.
fn refusals(
    policy: &Value,
    operation: &str,
    namespace: &str,
    user: &str,
    pod: &Value,
) -> Vec<String> {
    // An UPDATE comes from the same pod not yet bound to a node (one held by a scheduling gate).
    let old = (operation == "UPDATE").then(|| {
        let mut old = pod.clone();
        old["spec"].as_object_mut().unwrap().remove("nodeName");
        old
    });
    evaluate(policy, operation, namespace, user, pod, old.as_ref())
}

fn evaluate(
    policy: &Value,
    operation: &str,
    namespace: &str,
    user: &str,
    pod: &Value,
    old: Option<&Value>,
) -> Vec<String> {
    let mut pod = pod.clone();
    pod["metadata"]["namespace"] = json!(namespace);
    let request = json!({
        "operation": operation,
        "namespace": namespace,
        "userInfo": { "username": user },
        "resource": { "group": "", "version": "v1", "resource": "pods" },
    });
    let mut bindings: HashMap<String, cel::Value> = HashMap::new();
    bindings.insert("object".into(), cel::to_value(&pod).unwrap());
    bindings.insert("request".into(), cel::to_value(&request).unwrap());
    // null for CREATE, as the API server binds it.
    bindings.insert("oldObject".into(), cel::to_value(old).unwrap());
    let mut variables: HashMap<String, cel::Value> = HashMap::new();
    for v in policy["spec"]["variables"].as_array().unwrap() {
        let mut with = bindings.clone();
        with.insert("variables".into(), variables.clone().into());
        let value = eval(v["expression"].as_str().unwrap(), &with);
        variables.insert(v["name"].as_str().unwrap().to_string(), value);
    }
    bindings.insert("variables".into(), variables.into());
    let mut out = Vec::new();
    for v in policy["spec"]["validations"].as_array().unwrap() {
        match eval(v["expression"].as_str().unwrap(), &bindings) {
            cel::Value::Bool(true) => {}
            cel::Value::Bool(false) => out.push(v["message"].as_str().unwrap().to_string()),
            other => panic!("{} is not a bool: {other:?}", v["expression"]),
        }
    }
    out
}

/// What the RuntimeClass admission controller does to a pod that names a RuntimeClass before
/// validating admission runs: merges scheduling.nodeSelector into spec.nodeSelector and appends
/// scheduling.tolerations (kubernetes plugin/pkg/admission/runtimeclass/admission.go,
/// setScheduling; commit fd18d233ad4113d7f0782b62534ae405ecc5f027).
fn with_runtime_class(mut pod: Value, runtime_class: &Value) -> Value {
    let scheduling = &runtime_class["scheduling"];
    let spec = pod["spec"].as_object_mut().unwrap();
    spec.insert(
        "runtimeClassName".into(),
        runtime_class["metadata"]["name"].clone(),
    );
    let selector = spec
        .entry("nodeSelector")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .unwrap();
    for (k, v) in scheduling["nodeSelector"].as_object().unwrap() {
        selector.insert(k.clone(), v.clone());
    }
    let tolerations = spec
        .entry("tolerations")
        .or_insert_with(|| json!([]))
        .as_array_mut()
        .unwrap();
    tolerations.extend(
        scheduling["tolerations"]
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    pod
}

/// tenant-bridge's pod: spin-operator v0.6.1 internal/controller/spinapp_controller.go
/// (constructDeployment) puts the executor's deploymentConfig.runtimeClassName, the SpinApp's
/// serviceAccountName and podLabels on the pod template; the RuntimeClass completes it.
fn own_pod(built: &[Value]) -> Value {
    let app = find(built, "SpinApp");
    let executor = find(built, "SpinAppExecutor");
    let rc = find(built, "RuntimeClass");
    assert_eq!(
        executor["spec"]["deploymentConfig"]["runtimeClassName"],
        rc["metadata"]["name"]
    );
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "tenant-bridge-7d9f-x2k4", "labels": app["spec"]["podLabels"] },
        "spec": {
            "serviceAccountName": app["spec"]["serviceAccountName"],
            "containers": [{ "name": "tenant-bridge", "image": app["spec"]["image"], "command": ["/"] }],
        },
    });
    with_runtime_class(pod, rc)
}

fn plain_pod() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": { "name": "probe" },
        "spec": { "containers": [{ "name": "c", "image": "mcr.microsoft.com/azure-cli" }] },
    })
}

fn with_spec(mut pod: Value, key: &str, value: Value) -> Value {
    pod["spec"][key] = value;
    pod
}

const RS: &str = "system:serviceaccount:kube-system:replicaset-controller";

#[test]
fn the_admission_policy_refuses_every_route_to_the_identity_pool() {
    let built = rendered();
    let policy = find(&built, "ValidatingAdmissionPolicy");
    let binding = find(&built, "ValidatingAdmissionPolicyBinding");
    assert_eq!(policy["apiVersion"], "admissionregistration.k8s.io/v1");
    // Cluster-scoped. kustomize 5 does not know these kinds and writes the namespace into them;
    // the API server drops a namespace from a cluster-scoped object it creates or updates
    // (kubernetes staging/src/k8s.io/apiserver/pkg/registry/rest/create.go BeforeCreate and
    // update.go BeforeUpdate: `else if len(objectMeta.GetNamespace()) > 0 {
    // objectMeta.SetNamespace(metav1.NamespaceNone) }`), so either is what is stored.
    for object in [policy, binding] {
        let ns = &object["metadata"]["namespace"];
        assert!(ns.is_null() || ns == "tenant-bridge", "{ns}");
    }
    assert_eq!(binding["spec"]["policyName"], policy["metadata"]["name"]);
    assert_eq!(binding["spec"]["validationActions"], json!(["Deny"]));
    assert!(
        binding["spec"]["matchResources"].is_null(),
        "the binding covers every namespace; the policy's own list is the exemption"
    );
    assert_eq!(policy["spec"]["failurePolicy"], "Fail");
    let rules = &policy["spec"]["matchConstraints"]["resourceRules"];
    assert_eq!(rules[0]["resources"], json!(["pods"]));
    assert_eq!(rules[0]["operations"], json!(["CREATE", "UPDATE"]));

    let rc = find(&built, "RuntimeClass");
    let config = config_example();
    let taint = &config["NODE_TAINT"]; // key=value:effect
    let (key_value, effect) = taint.split_once(':').unwrap();
    let (taint_key, taint_value) = key_value.split_once('=').unwrap();
    let pool = config["AKS_NODEPOOL"].as_str();
    let namespace = find(&built, "SpinApp")["metadata"]["namespace"]
        .as_str()
        .unwrap()
        .to_string();

    // Admitted: tenant-bridge's own pod, created by the ReplicaSet controller in its namespace.
    let own = own_pod(&built);
    assert_eq!(
        refusals(policy, "CREATE", &namespace, RS, &own),
        Vec::<String>::new()
    );
    assert_eq!(
        refusals(policy, "UPDATE", &namespace, RS, &own),
        Vec::<String>::new()
    );

    // Refused, in another namespace: each route on its own.
    let foreign = "apps";
    let shim = find(&kustomize(&kubectl(), &deploy().join("shim")), "Shim").clone();
    let shim_label = shim["metadata"]["name"].as_str().unwrap().to_string();
    let routes: Vec<(&str, Value)> = vec![
        (
            "the RuntimeClass, as admission completes it",
            with_runtime_class(plain_pod(), rc),
        ),
        (
            "the RuntimeClass by name alone",
            with_spec(
                plain_pod(),
                "runtimeClassName",
                rc["metadata"]["name"].clone(),
            ),
        ),
        (
            "the installer's own RuntimeClass",
            with_spec(
                plain_pod(),
                "runtimeClassName",
                shim["spec"]["runtimeClass"]["name"].clone(),
            ),
        ),
        (
            "the taint's exact toleration",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": taint_key, "operator": "Equal", "value": taint_value, "effect": effect }]),
            ),
        ),
        (
            "the taint's key with Exists",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": taint_key, "operator": "Exists" }]),
            ),
        ),
        (
            "the taint's key and value, any effect, default operator",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": taint_key, "value": taint_value }]),
            ),
        ),
        (
            "every taint (no key, Exists)",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "operator": "Exists" }]),
            ),
        ),
        (
            "every taint (an empty key written out, Exists, NoSchedule)",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": "", "operator": "Exists", "effect": "NoSchedule" }]),
            ),
        ),
        (
            "the pool by nodeSelector",
            with_spec(
                plain_pod(),
                "nodeSelector",
                json!({ "kubernetes.azure.com/agentpool": pool }),
            ),
        ),
        (
            "the provisioned label by nodeSelector",
            with_spec(
                plain_pod(),
                "nodeSelector",
                json!({ shim_label.clone(): "provisioned" }),
            ),
        ),
        (
            "the pool by required node affinity",
            with_spec(
                plain_pod(),
                "affinity",
                json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "kubernetes.azure.com/agentpool", "operator": "In", "values": ["nodepool1", pool] }] }] } } }),
            ),
        ),
        (
            "the shim's pool label by preferred node affinity",
            with_spec(
                plain_pod(),
                "affinity",
                json!({ "nodeAffinity": { "preferredDuringSchedulingIgnoredDuringExecution": [{
                "weight": 100, "preference": { "matchExpressions": [{ "key": "tenant-bridge.io/shim", "operator": "Exists" }] } }] } }),
            ),
        ),
        (
            "spec.nodeName at creation",
            with_spec(
                plain_pod(),
                "nodeName",
                json!("aks-tbridge-12345678-vmss000000"),
            ),
        ),
    ];
    for (route, pod) in &routes {
        let refused = refusals(policy, "CREATE", foreign, RS, pod);
        assert!(
            !refused.is_empty(),
            "a foreign pod using {route} was admitted"
        );
        // A gated pod that gains it by UPDATE is refused too (nodeName cannot be changed by
        // UPDATE: it is set by the binding subresource, which the scheduler alone may create).
        if *route != "spec.nodeName at creation" {
            let refused = refusals(policy, "UPDATE", foreign, RS, pod);
            assert!(!refused.is_empty(), "an UPDATE adding {route} was admitted");
        }
        // Created directly by a user rather than a controller: same answer.
        let refused = refusals(policy, "CREATE", foreign, "alice@example.com", pod);
        assert!(
            !refused.is_empty(),
            "a user's pod using {route} was admitted"
        );
    }

    // Admitted elsewhere: pods that stay off the pool.
    let harmless: Vec<(&str, Value)> = vec![
        ("nothing special", plain_pod()),
        (
            "another taint's toleration",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": "CriticalAddonsOnly", "operator": "Exists" }]),
            ),
        ),
        (
            "the taint's key with another value",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": taint_key, "operator": "Equal", "value": "false", "effect": effect }]),
            ),
        ),
        (
            "the taint's key for NoExecute only",
            with_spec(
                plain_pod(),
                "tolerations",
                json!([{ "key": taint_key, "operator": "Exists", "effect": "NoExecute" }]),
            ),
        ),
        (
            "another pool",
            with_spec(
                plain_pod(),
                "nodeSelector",
                json!({ "kubernetes.azure.com/agentpool": "nodepool1" }),
            ),
        ),
        (
            "another pool by affinity",
            with_spec(
                plain_pod(),
                "affinity",
                json!({ "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{ "matchExpressions": [{ "key": "kubernetes.azure.com/agentpool", "operator": "In", "values": ["nodepool1"] }] }] } } }),
            ),
        ),
    ];
    for (what, pod) in &harmless {
        assert_eq!(
            refusals(policy, "CREATE", foreign, RS, pod),
            Vec::<String>::new(),
            "a foreign pod with {what} was refused"
        );
    }

    // A pod already bound to a node cannot move: updating it (a controller removing its
    // finalizer, say) is admitted, even for one that tolerates every taint and existed before
    // the policy.
    let mut bound = with_spec(
        plain_pod(),
        "tolerations",
        json!([{ "operator": "Exists" }]),
    );
    bound["spec"]["nodeName"] = json!("aks-nodepool1-12345678-vmss000000");
    assert_eq!(
        evaluate(policy, "UPDATE", foreign, RS, &bound, Some(&bound)),
        Vec::<String>::new()
    );

    // runtime-class-manager's install Job pod sets spec.nodeName to each node it installs on
    // (runtime-class-manager v0.2.0 internal/controller/shim_controller.go, createJobManifest),
    // in the controller's namespace: refusing it would keep the shim off the pool.
    let installer = with_spec(
        plain_pod(),
        "nodeName",
        json!("aks-tbridge-12345678-vmss000000"),
    );
    assert_eq!(
        refusals(
            policy,
            "CREATE",
            "runtime-class-manager",
            "system:serviceaccount:kube-system:job-controller",
            &installer
        ),
        Vec::<String>::new()
    );
    // A node's mirror pod of its own static pod (the kubelet creates it, already on the node).
    assert_eq!(
        refusals(
            policy,
            "CREATE",
            foreign,
            "system:node:aks-tbridge-12345678-vmss000000",
            &installer
        ),
        Vec::<String>::new()
    );
}
