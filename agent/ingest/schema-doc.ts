// What a reading schema document may say: the compact field format or a plain JSON Schema.
import { Type, type Static } from '@sinclair/typebox';

const FIELD_TYPES = ['string', 'integer', 'float', 'boolean', 'array', 'object', 'timestamp'] as const;
const FieldType = Type.Union(FIELD_TYPES.map((t) => Type.Literal(t)));

const FieldObject = Type.Object(
  {
    type: FieldType,
    required: Type.Optional(Type.Boolean({ description: 'the reading must have this field' })),
    min: Type.Optional(Type.Number({ description: 'smallest value (numbers), length (strings) or item count (arrays)' })),
    max: Type.Optional(Type.Number({ description: 'largest value (numbers), length (strings) or item count (arrays)' })),
    pattern: Type.Optional(Type.String({ description: 'regular expression a string must match' })),
    enum: Type.Optional(Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]), { minItems: 1 })),
    items: Type.Optional(FieldType),
    unit: Type.Optional(Type.String({ description: 'unit of measure, for people and sinks' })),
    description: Type.Optional(Type.String()),
    tag: Type.Optional(Type.Boolean({ description: 'an identifying attribute (an InfluxDB tag), not a measured value' })),
    counter: Type.Optional(
      Type.Boolean({
        description:
          'a count that only grows (a meter, packets sent): charts leave it off by default; default: true for fields named count, counter or *_total',
      }),
    ),
  },
  { additionalProperties: false },
);

/** A schema's name: also a file name in the schema folder, so no path and no leading dot. */
export const SCHEMA_NAME = '^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$';

export const SchemaDocSchema = Type.Object(
  {
    name: Type.String({
      pattern: SCHEMA_NAME,
      description: 'schema name, recorded with each reading: letters, digits, _ . -, at most 128, not starting with . or -',
    }),
    version: Type.Integer({ minimum: 1, default: 1, description: 'schema version, recorded with each reading' }),
    topics: Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'MQTT topic patterns (+, #) this schema applies to' }),
    mode: Type.Optional(
      Type.Union([Type.Literal('strict'), Type.Literal('lenient')], { description: 'strict rejects unknown fields; default ingest.mode' }),
    ),
    timestamp: Type.Optional(Type.String({ description: "field holding the device's own time (ISO 8601 or epoch s/ms)" })),
    measurement: Type.Optional(Type.String({ description: 'measurement name for sinks; default: the schema name' })),
    description: Type.Optional(Type.String()),
    fields: Type.Optional(
      Type.Record(Type.String(), Type.Union([FieldType, FieldObject]), { description: 'compact field list: name -> type or {type, ...}' }),
    ),
    jsonSchema: Type.Optional(Type.Object({}, { additionalProperties: true, description: 'a plain JSON Schema instead of fields' })),
    tags: Type.Optional(Type.Array(Type.String(), { description: 'tag fields, for plain JSON Schemas' })),
  },
  { additionalProperties: false, oneOf: [{ required: ['fields'] }, { required: ['jsonSchema'] }] },
);

export type SchemaDoc = Static<typeof SchemaDocSchema>;
export type FieldSpec = Static<typeof FieldObject>;
