"""The dated price table: list prices in USD for one region per cloud (the stack files'
defaults), with the page each figure comes from (SOURCES) and its date (PRICES_AS_OF).
Clouds change prices: infra/prices.py turns these into an estimate and says so."""

from __future__ import annotations

PRICES_AS_OF = "2025-06-01"
HOURS_PER_MONTH = 730
SOURCES = {
    "gcp": "https://cloud.google.com/compute/all-pricing, "
    "https://cloud.google.com/compute/disks-image-pricing, "
    "https://cloud.google.com/vpc/network-pricing#ipaddress, "
    "https://cloud.google.com/compute/gpus-pricing, https://cloud.google.com/vertex-ai/pricing, "
    "https://cloud.google.com/storage/pricing, "
    "https://cloud.google.com/artifact-registry/pricing (us-central1)",
    "aws": "https://aws.amazon.com/ec2/pricing/on-demand/, "
    "https://aws.amazon.com/ebs/pricing/, https://aws.amazon.com/vpc/pricing/ (public IPv4), "
    "https://aws.amazon.com/s3/pricing/ (us-east-1)",
    "azure": "https://azure.microsoft.com/pricing/details/virtual-machines/linux/, "
    "https://azure.microsoft.com/pricing/details/managed-disks/, "
    "https://azure.microsoft.com/pricing/details/storage/blobs/, "
    "https://azure.microsoft.com/pricing/details/ip-addresses/ (East US)",
    "local": "your own machine: no cloud charges",
}

# Compute Engine machines, per hour. n1 prices exclude GPUs (attached, priced in GPU_HOURLY);
# g2 and a2 prices include their built-in GPUs.
GCE_HOURLY = {
    "n1-standard-4": 0.189999,
    "n1-standard-8": 0.379998,
    "n1-standard-16": 0.759996,
    "g2-standard-4": 0.706832,
    "g2-standard-8": 0.853624,
    "g2-standard-16": 1.147208,
    "a2-highgpu-1g": 3.673385,
    "a2-highgpu-2g": 7.34677,
}
GCE_GPU_HOURLY = {"nvidia-tesla-t4": 0.35}
# Vertex AI custom training: the machine and each accelerator are billed separately.
VERTEX_MACHINE_HOURLY = {
    "n1-standard-4": 0.2185,
    "n1-standard-8": 0.4370,
    "n1-standard-16": 0.8740,
    "g2-standard-4": 0.2835,
    "g2-standard-8": 0.3425,
    "g2-standard-16": 0.4605,
    "a2-highgpu-1g": 0.8652,
    "a2-highgpu-2g": 1.7305,
}
VERTEX_ACCELERATOR_HOURLY = {
    "NVIDIA_TESLA_T4": 0.4025,
    "NVIDIA_L4": 0.6440,
    "NVIDIA_TESLA_A100": 3.3741,
}
AWS_HOURLY = {
    "g4dn.xlarge": 0.526,
    "g4dn.2xlarge": 0.752,
    "g4dn.4xlarge": 1.204,
    "g4dn.12xlarge": 3.912,
    "g5.xlarge": 1.006,
    "g5.2xlarge": 1.212,
    "g5.4xlarge": 1.624,
    "g6.xlarge": 0.8048,
    "g6.2xlarge": 0.9776,
    "g6.4xlarge": 1.3232,
}
AZURE_HOURLY = {
    "Standard_NC4as_T4_v3": 0.526,
    "Standard_NC8as_T4_v3": 0.752,
    "Standard_NC16as_T4_v3": 1.204,
    "Standard_NC64as_T4_v3": 4.352,
    "Standard_NV36ads_A10_v5": 3.20,
    "Standard_NC24ads_A100_v4": 3.673,
}
# A Standard static public IPv4 address (one per Azure node), per hour, allocated or not.
AZURE_PUBLIC_IP_HOURLY = 0.005
# Public IPv4 on AWS: every address, per hour (an Elastic IP whether attached or not, an
# auto-assigned one while its instance runs).
AWS_PUBLIC_IPV4_HOURLY = 0.005
# Compute Engine external IPv4, per hour: in use by a standard VM, by a spot VM, and a static
# address reserved but not in use (its VM stopped).
GCE_IPV4_IN_USE_HOURLY = 0.005
GCE_IPV4_IN_USE_SPOT_HOURLY = 0.0025
GCE_STATIC_IPV4_IDLE_HOURLY = 0.01
# Root disks, per GB-month: gp3 on AWS, pd-ssd on GCP. Azure bills Standard SSD by size tier
# (E1 4 GiB ... E40 2 TiB), per month.
AWS_GP3_GB_MONTH = 0.08
GCE_PD_SSD_GB_MONTH = 0.17
AZURE_STANDARD_SSD_MONTH = (
    (4, 0.30), (8, 0.60), (16, 1.20), (32, 2.40), (64, 4.80), (128, 9.60),
    (256, 19.20), (512, 38.40), (1024, 76.80), (2048, 153.60),
)  # fmt: skip
# Storage, per GB-month.
STORAGE_GB_MONTH = {
    "gcp:storage/bucket:Bucket": 0.020,
    "gcp:artifactregistry/repository:Repository": 0.10,
    "aws:s3/bucketV2:BucketV2": 0.023,
    "aws:s3/bucket:Bucket": 0.023,
    "azure-native:storage:StorageAccount": 0.0184,
}

# Image repositories hold the trainer image (TensorFlow GPU base: about 10 GB with its layers).
IMAGE_REPOSITORY_GB = 10
REPOSITORY_TYPES = ("gcp:artifactregistry/repository:Repository",)

# Types that bill nothing by themselves (what they create is priced elsewhere, or is free).
FREE_PREFIXES = (
    "pulumi:providers:",
    "trackday:",
    "random:",
    "tls:",
    "command:",
    "pulumi-python:dynamic:",  # dynamic providers run on the operator's machine (run files)
    "docker:",  # the local engine, or containers on nodes priced as machines
    "docker-build:",  # building; the stored image is priced with its repository
    "gcp:projects/service:",
    "gcp:serviceaccount/account:",
    "gcp:serviceaccount/key:",
    "gcp:storage/bucketIAMMember:",
    "gcp:artifactregistry/repositoryIamMember:",
    # The swarm's join secret: a version per manager (re)start, within Secret Manager's free
    # 6 active versions and 10,000 accesses a month (https://cloud.google.com/secret-manager/pricing).
    "gcp:secretmanager/",
    "gcp:storage/bucketObject:",  # the trainer's source archive (< 1 MB), billed as bucket data
    "gcp:compute/network:",
    "gcp:compute/subnetwork:",
    "gcp:compute/firewall:",
    "aws:iam/",
    "aws:ec2/vpc:",
    "aws:ec2/subnet:",
    "aws:ec2/securityGroup",
    "aws:ec2/internetGateway:",
    "aws:ec2/routeTable",
    "aws:ec2/route:",
    "aws:s3/bucket",  # bucket settings resources (versioning, policy, public access block...)
    # The swarm's parameters: standard tier, "no additional charge", standard throughput
    # (https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-
    # parameters.html, read 2026-11-30); the trainer archive is billed as bucket data above.
    "aws:ssm/parameter:",
    "azure-native:resources:",
    "azure-native:managedidentity:",
    # The swarm's vault: no monthly fee, $0.03 per 10,000 secret operations (a deploy makes a
    # few hundred; https://azure.microsoft.com/pricing/details/key-vault/).
    "azure-native:keyvault:",
    "azure-native:authorization:",
    "azure-native:network:virtualNetwork",
    "azure-native:network:subnet",
    "azure-native:network:networkSecurityGroup",
    "azure-native:network:VirtualNetwork",
    "azure-native:network:Subnet",
    "azure-native:network:NetworkSecurityGroup",
    "azure-native:network:NetworkInterface",
    "azure-native:compute:VirtualMachineExtension",  # the NVIDIA driver: no charge of its own
    "azure-native:storage:BlobContainer",
    "azure-native:storage:BlobServiceProperties",
    "azure-native:storage:ManagementPolicy",
)
