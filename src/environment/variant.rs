//! The production variant a candidate is deployed as: instances of one type,
//! or a ServerlessConfig — never both, as SageMaker requires. Each kind of
//! candidate says here what its variant holds; deploy, naming and teardown
//! are the same for both.

use aws_sdk_sagemaker::types::{ProductionVariant, ProductionVariantInstanceType, ProductionVariantServerlessConfig};

use crate::vocab::{Candidate, Fleet, ServerlessSize};

/// The variant every perfsize endpoint serves through.
use crate::sagemaker::VARIANT_NAME as VARIANT;

/// The one production variant of `candidate`'s endpoint config, serving `model`.
pub(super) fn production_variant(candidate: &Candidate, model: &str) -> ProductionVariant {
    let variant = ProductionVariant::builder().variant_name(VARIANT).model_name(model);
    match candidate {
        Candidate::Instances(fleet) => instances(variant, fleet),
        Candidate::Serverless(size) => serverless(variant, size),
    }
    .build()
}

type Builder = aws_sdk_sagemaker::types::builders::ProductionVariantBuilder;

fn instances(variant: Builder, fleet: &Fleet) -> Builder {
    variant
        .instance_type(ProductionVariantInstanceType::from(fleet.instance_type.as_str()))
        .initial_instance_count(fleet.count as i32)
        .initial_variant_weight(1.0)
}

/// No instance type, count or weight: SageMaker refuses a variant with both.
fn serverless(variant: Builder, size: &ServerlessSize) -> Builder {
    let config = ProductionVariantServerlessConfig::builder()
        .memory_size_in_mb(size.memory().mb() as i32)
        .max_concurrency(size.max_concurrency() as i32)
        .set_provisioned_concurrency(size.provisioned().map(|p| p as i32))
        .build();
    variant.serverless_config(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::MemorySize;

    #[test]
    fn a_variant_holds_instances_or_a_serverless_config_never_both() {
        let fleet = production_variant(&Candidate::new("ml.m5.large".parse().unwrap(), 2), "m");
        assert_eq!(fleet.instance_type().map(|t| t.as_str()), Some("ml.m5.large"));
        assert_eq!(fleet.initial_instance_count(), Some(2));
        assert!(fleet.serverless_config().is_none());
        let size = ServerlessSize::new(MemorySize::try_from(3072).unwrap(), 12, Some(2)).unwrap();
        let serverless = production_variant(&Candidate::Serverless(size), "m");
        assert!(serverless.instance_type().is_none() && serverless.initial_instance_count().is_none());
        assert!(serverless.initial_variant_weight().is_none());
        let config = serverless.serverless_config().unwrap();
        assert_eq!(
            (config.memory_size_in_mb(), config.max_concurrency(), config.provisioned_concurrency()),
            (Some(3072), Some(12), Some(2))
        );
    }
}
