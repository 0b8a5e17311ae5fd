//! Reading property sections and MQTT 5 variable byte integers.
//!
//! [`read_properties`] checks what every property section shares (the length, identifiers,
//! Table 2-4, repetition) and hands each property to the packet's decoder as a
//! [`PropertyValue`], whose accessor reads the value with the property's data type and range.

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Buf, Bytes};
use bytestring::ByteString;

use crate::codec::error::DecodeError;
use crate::codec::primitives::{
    MAX_REMAINING_LENGTH_BYTES, ensure, read_binary, read_string, read_u8, read_u16,
    remaining_length_len,
};
use crate::codec::topic::validate_topic_name;
use crate::codec::v5::packet::SubscriptionId;
use crate::codec::v5::properties::{DataType, PropertyContext, PropertyId};

/// Reads an MQTT 5 variable byte integer (§1.5.5): at most four bytes, and in the fewest
/// bytes possible ([MQTT-1.5.5-1]).
pub(crate) fn read_variable_int(src: &mut Bytes, field: &'static str) -> Result<u32, DecodeError> {
    let mut value: u32 = 0;
    for i in 0..MAX_REMAINING_LENGTH_BYTES {
        let byte = read_u8(src, field)?;
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            ensure!(
                remaining_length_len(value as usize) == i + 1,
                DecodeError::NonMinimalVariableByteInteger { field }
            );
            return Ok(value);
        }
    }
    Err(DecodeError::MalformedVariableByteInteger { field })
}

/// Reads a property section (Property Length, then the properties) for `context`, calling
/// `on_property` once per property, in wire order. `on_property` must read the value with
/// exactly one accessor of the [`PropertyValue`] it gets.
pub(crate) fn read_properties(
    src: &mut Bytes,
    context: PropertyContext,
    mut on_property: impl FnMut(PropertyValue<'_>) -> Result<(), DecodeError>,
) -> Result<(), DecodeError> {
    let len = read_variable_int(src, "property length")? as usize;
    ensure!(
        src.remaining() >= len,
        DecodeError::Truncated {
            field: "properties"
        }
    );
    let mut section = src.split_to(len);
    // Every identifier is below 64, so one bit each.
    let mut seen: u64 = 0;
    while section.has_remaining() {
        let byte = section.get_u8();
        let property = PropertyId::try_from(byte).map_err(DecodeError::InvalidPropertyId)?;
        ensure!(
            property.allowed_in(context),
            DecodeError::PropertyNotAllowed { property, context }
        );
        let bit = 1u64 << (property as u8);
        ensure!(
            seen & bit == 0 || property.repeatable_in(context),
            DecodeError::DuplicateProperty { property, context }
        );
        seen |= bit;
        on_property(PropertyValue {
            property,
            context,
            src: &mut section,
        })?;
    }
    Ok(())
}

/// One property about to be read: its identifier, and accessors that read its value.
#[derive(Debug)]
pub(crate) struct PropertyValue<'a> {
    property: PropertyId,
    context: PropertyContext,
    src: &'a mut Bytes,
}

impl PropertyValue<'_> {
    /// The property being read.
    pub(crate) fn id(&self) -> PropertyId {
        self.property
    }

    /// The error for a property the caller does not expect here. Unreachable while the
    /// packet decoders agree with Table 2-4, which the tests check; an error, not a panic,
    /// if they ever do not.
    pub(crate) fn not_allowed(&self) -> DecodeError {
        DecodeError::PropertyNotAllowed {
            property: self.property,
            context: self.context,
        }
    }

    /// The error for a value out of the property's range.
    fn invalid(&self, value: u32) -> DecodeError {
        DecodeError::InvalidPropertyValue {
            property: self.property,
            context: self.context,
            value,
        }
    }

    fn expect(&self, data_type: DataType) {
        debug_assert_eq!(
            self.property.data_type(),
            data_type,
            "{} read with the wrong accessor",
            self.property
        );
    }

    /// A byte property that must be 0 or 1.
    pub(crate) fn flag(self) -> Result<bool, DecodeError> {
        self.expect(DataType::Byte);
        match read_u8(self.src, self.property.name())? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.invalid(u32::from(other))),
        }
    }

    /// A two-byte integer property.
    pub(crate) fn two(self) -> Result<u16, DecodeError> {
        self.expect(DataType::TwoByteInteger);
        read_u16(self.src, self.property.name())
    }

    /// A two-byte integer property that must not be 0.
    pub(crate) fn non_zero_two(self) -> Result<NonZeroU16, DecodeError> {
        self.expect(DataType::TwoByteInteger);
        let value = read_u16(self.src, self.property.name())?;
        NonZeroU16::new(value).ok_or_else(|| self.invalid(0))
    }

    /// A four-byte integer property.
    pub(crate) fn four(self) -> Result<u32, DecodeError> {
        self.expect(DataType::FourByteInteger);
        let field = self.property.name();
        ensure!(self.src.remaining() >= 4, DecodeError::Truncated { field });
        Ok(self.src.get_u32())
    }

    /// A four-byte integer property that must not be 0.
    pub(crate) fn non_zero_four(self) -> Result<NonZeroU32, DecodeError> {
        self.expect(DataType::FourByteInteger);
        let field = self.property.name();
        ensure!(self.src.remaining() >= 4, DecodeError::Truncated { field });
        NonZeroU32::new(self.src.get_u32()).ok_or_else(|| self.invalid(0))
    }

    /// A subscription identifier: a variable byte integer that must not be 0.
    pub(crate) fn subscription_id(self) -> Result<SubscriptionId, DecodeError> {
        self.expect(DataType::VariableByteInteger);
        let value = read_variable_int(self.src, self.property.name())?;
        SubscriptionId::new(value).ok_or_else(|| self.invalid(value))
    }

    /// A UTF-8 string property.
    pub(crate) fn string(self) -> Result<ByteString, DecodeError> {
        self.expect(DataType::Utf8String);
        read_string(self.src, self.property.name())
    }

    /// A UTF-8 string property that is a topic name (Response Topic, [MQTT-3.3.2-14]).
    pub(crate) fn topic_name(self) -> Result<ByteString, DecodeError> {
        self.expect(DataType::Utf8String);
        let topic = read_string(self.src, self.property.name())?;
        validate_topic_name(&topic)?;
        Ok(topic)
    }

    /// A binary data property.
    pub(crate) fn binary(self) -> Result<Bytes, DecodeError> {
        self.expect(DataType::BinaryData);
        read_binary(self.src, self.property.name())
    }

    /// A UTF-8 string pair property ([MQTT-1.5.7-1]).
    pub(crate) fn pair(self) -> Result<(ByteString, ByteString), DecodeError> {
        self.expect(DataType::Utf8StringPair);
        let name = read_string(self.src, "user property name")?;
        let value = read_string(self.src, "user property value")?;
        Ok((name, value))
    }
}
