"""Read back what pulse-metrics published to (lab) CloudWatch, on the controller.

usage: read_metrics.py ENDPOINT REGION NAMESPACE ENVIRONMENT INSTANCE_ID
Prints JSON: {metric name: {"count", "min", "max", "sum"}} over the last 30 minutes, for the
datapoints with exactly these two dimensions, and the dimension sets list_metrics reports.
"""

import datetime
import json
import sys

import boto3


def main(endpoint, region, namespace, environment, instance_id):
    client = boto3.client("cloudwatch", endpoint_url=endpoint, region_name=region,
                          aws_access_key_id="lab-not-a-secret", aws_secret_access_key="lab-not-a-secret")
    dims = [{"Name": "Environment", "Value": environment}, {"Name": "InstanceId", "Value": instance_id}]
    listed = client.list_metrics(Namespace=namespace, Dimensions=[{"Name": "Environment", "Value": environment}])
    now = datetime.datetime.now(datetime.timezone.utc)
    result = {"metrics": {}, "dimension_sets": {}}
    for metric in listed["Metrics"]:
        name = metric["MetricName"]
        dim_names = sorted(d["Name"] for d in metric["Dimensions"])
        if dim_names not in result["dimension_sets"].setdefault(name, []):
            result["dimension_sets"][name].append(dim_names)
        if name in result["metrics"]:
            continue
        points = client.get_metric_statistics(
            Namespace=namespace, MetricName=name, Dimensions=dims,
            StartTime=now - datetime.timedelta(minutes=30), EndTime=now + datetime.timedelta(minutes=5),
            Period=60, Statistics=["SampleCount", "Minimum", "Maximum", "Sum"],
        )["Datapoints"]
        if points:
            result["metrics"][name] = {
                "count": int(sum(p["SampleCount"] for p in points)),
                "min": min(p["Minimum"] for p in points),
                "max": max(p["Maximum"] for p in points),
                "sum": sum(p["Sum"] for p in points),
            }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:6])
