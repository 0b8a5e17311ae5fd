//! Writing property sections.
//!
//! Each packet's properties struct implements [`WriteProperties`] once; the same code both
//! measures the section ([`properties_len`], which also rejects over-long fields before anything
//! is written) and writes it ([`write_properties`]).

use bytes::{BufMut, BytesMut};
use bytestring::ByteString;

use crate::codec::error::EncodeError;
use crate::codec::primitives::{
    MAX_FIELD_LEN, field_len, remaining_length_len, write_binary, write_remaining_length,
    write_string,
};
use crate::codec::v5::properties::{DataType, PropertyId};

/// A properties struct that can be written as a property section.
pub(crate) trait WriteProperties {
    /// Passes every property present to `w`, in the spec's order.
    fn write_properties(&self, w: &mut PropertyWriter<'_>) -> Result<(), EncodeError>;
}

/// The size of the properties of `properties`, without the Property Length in front.
///
/// Fails if a string or binary value is longer than 65 535 bytes.
pub(crate) fn properties_len(properties: &impl WriteProperties) -> Result<usize, EncodeError> {
    let mut counter = PropertyWriter { dst: None, len: 0 };
    properties.write_properties(&mut counter)?;
    Ok(counter.len)
}

/// The size of a whole property section whose properties take `len` bytes.
pub(crate) fn section_len(len: usize) -> usize {
    remaining_length_len(len) + len
}

/// Writes the Property Length `len`, as measured by [`properties_len`], then the properties.
pub(crate) fn write_properties(
    properties: &impl WriteProperties,
    len: usize,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    write_remaining_length(len, dst)?;
    let start = dst.len();
    let mut writer = PropertyWriter {
        dst: Some(dst),
        len: 0,
    };
    properties.write_properties(&mut writer)?;
    debug_assert_eq!(writer.len, len, "properties changed size between passes");
    debug_assert_eq!(
        dst.len() - start,
        len,
        "properties measured and written differ"
    );
    Ok(())
}

/// Measures properties, and writes them when it has a buffer. Each method takes an `Option`
/// and does nothing for `None`, so that a properties struct writes its fields in one pass.
#[derive(Debug)]
pub(crate) struct PropertyWriter<'a> {
    dst: Option<&'a mut BytesMut>,
    len: usize,
}

impl PropertyWriter<'_> {
    fn start(&mut self, id: PropertyId, data_type: DataType, value_len: usize) {
        debug_assert_eq!(
            id.data_type(),
            data_type,
            "{id} written with the wrong method"
        );
        self.len += 1 + value_len;
        if let Some(dst) = self.dst.as_deref_mut() {
            dst.put_u8(id as u8);
        }
    }

    fn check_field(id: PropertyId, len: usize) -> Result<(), EncodeError> {
        if len > MAX_FIELD_LEN {
            return Err(EncodeError::FieldTooLong {
                field: id.name(),
                len,
            });
        }
        Ok(())
    }

    /// A byte property.
    pub(crate) fn byte(&mut self, id: PropertyId, value: Option<u8>) {
        if let Some(value) = value {
            self.start(id, DataType::Byte, 1);
            if let Some(dst) = self.dst.as_deref_mut() {
                dst.put_u8(value);
            }
        }
    }

    /// A byte property holding 0 or 1.
    pub(crate) fn flag(&mut self, id: PropertyId, value: Option<bool>) {
        self.byte(id, value.map(u8::from));
    }

    /// A two-byte integer property.
    pub(crate) fn two(&mut self, id: PropertyId, value: Option<u16>) {
        if let Some(value) = value {
            self.start(id, DataType::TwoByteInteger, 2);
            if let Some(dst) = self.dst.as_deref_mut() {
                dst.put_u16(value);
            }
        }
    }

    /// A four-byte integer property.
    pub(crate) fn four(&mut self, id: PropertyId, value: Option<u32>) {
        if let Some(value) = value {
            self.start(id, DataType::FourByteInteger, 4);
            if let Some(dst) = self.dst.as_deref_mut() {
                dst.put_u32(value);
            }
        }
    }

    /// A variable byte integer property; `value` must not exceed 268 435 455, which the
    /// callers' types guarantee.
    pub(crate) fn variable(
        &mut self,
        id: PropertyId,
        value: Option<u32>,
    ) -> Result<(), EncodeError> {
        if let Some(value) = value {
            let value = value as usize;
            self.start(
                id,
                DataType::VariableByteInteger,
                remaining_length_len(value),
            );
            if let Some(dst) = self.dst.as_deref_mut() {
                write_remaining_length(value, dst)?;
            }
        }
        Ok(())
    }

    /// A UTF-8 string property.
    pub(crate) fn string(
        &mut self,
        id: PropertyId,
        value: Option<&str>,
    ) -> Result<(), EncodeError> {
        if let Some(value) = value {
            Self::check_field(id, value.len())?;
            self.start(id, DataType::Utf8String, field_len(value.len()));
            if let Some(dst) = self.dst.as_deref_mut() {
                write_string(id.name(), value, dst)?;
            }
        }
        Ok(())
    }

    /// A binary data property.
    pub(crate) fn binary(
        &mut self,
        id: PropertyId,
        value: Option<&[u8]>,
    ) -> Result<(), EncodeError> {
        if let Some(value) = value {
            Self::check_field(id, value.len())?;
            self.start(id, DataType::BinaryData, field_len(value.len()));
            if let Some(dst) = self.dst.as_deref_mut() {
                write_binary(id.name(), value, dst)?;
            }
        }
        Ok(())
    }

    /// Every user property, in order.
    pub(crate) fn user_properties(
        &mut self,
        pairs: &[(ByteString, ByteString)],
    ) -> Result<(), EncodeError> {
        let id = PropertyId::UserProperty;
        for (name, value) in pairs {
            Self::check_field(id, name.len())?;
            Self::check_field(id, value.len())?;
            let len = field_len(name.len()) + field_len(value.len());
            self.start(id, DataType::Utf8StringPair, len);
            if let Some(dst) = self.dst.as_deref_mut() {
                write_string("user property name", name, dst)?;
                write_string("user property value", value, dst)?;
            }
        }
        Ok(())
    }
}
