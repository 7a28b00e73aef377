package check

import (
	"errors"
	"fmt"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ErrUnknownKind is returned by Decode for an apiVersion/kind it has no type for.
var ErrUnknownKind = errors.New("unknown apiVersion/kind")

// Object is a decoded manifest: its type and object metadata, and the
// typed value (*appsv1.Deployment, *corev1.Service, ...).
type Object struct {
	metav1.TypeMeta
	Meta  metav1.ObjectMeta
	Value any
}

// Decode decodes one manifest strictly into its Kubernetes type: a field the
// type does not have, a duplicate field or a value of the wrong type is an
// error, as `kubectl apply --validate=strict` would have it.
func Decode(doc []byte) (*Object, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var v any
	switch tm.APIVersion + "/" + tm.Kind {
	case "apps/v1/Deployment":
		v = &appsv1.Deployment{}
	case "apps/v1/StatefulSet":
		v = &appsv1.StatefulSet{}
	case "v1/Service":
		v = &corev1.Service{}
	case "v1/ConfigMap":
		v = &corev1.ConfigMap{}
	case "v1/Secret":
		v = &corev1.Secret{}
	case "v1/PersistentVolumeClaim":
		v = &corev1.PersistentVolumeClaim{}
	case "v1/ServiceAccount":
		v = &corev1.ServiceAccount{}
	case "policy/v1/PodDisruptionBudget":
		v = &policyv1.PodDisruptionBudget{}
	case "autoscaling/v2/HorizontalPodAutoscaler":
		v = &autoscalingv2.HorizontalPodAutoscaler{}
	case "batch/v1/Job":
		v = &batchv1.Job{}
	case "monitoring.coreos.com/v1/ServiceMonitor":
		v = &monitoringv1.ServiceMonitor{}
	case "monitoring.coreos.com/v1/PrometheusRule":
		v = &monitoringv1.PrometheusRule{}
	default:
		return nil, fmt.Errorf("%w %s/%s", ErrUnknownKind, tm.APIVersion, tm.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return nil, fmt.Errorf("%s %s: %w", tm.APIVersion, tm.Kind, err)
	}
	var om struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &om); err != nil {
		return nil, err
	}
	if om.Metadata.Name == "" {
		return nil, fmt.Errorf("%s %s: no metadata.name", tm.APIVersion, tm.Kind)
	}
	return &Object{TypeMeta: tm, Meta: om.Metadata, Value: v}, nil
}

// PodSpec returns the pod template of a workload (Deployment, StatefulSet,
// Job), or nil.
func (o *Object) PodTemplate() *corev1.PodTemplateSpec {
	switch v := o.Value.(type) {
	case *appsv1.Deployment:
		return &v.Spec.Template
	case *appsv1.StatefulSet:
		return &v.Spec.Template
	case *batchv1.Job:
		return &v.Spec.Template
	}
	return nil
}
