using System.Runtime.InteropServices;
using Google.Protobuf;
using VideoMatch.Engine.Onnx.Proto;

namespace VideoMatch.Engine.Onnx;

/// <summary>An ONNX node attribute.</summary>
internal readonly record struct OnnxAttribute(string Name, AttributeProto Proto)
{
    public static OnnxAttribute Int(string name, long value) =>
        new(name, new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value });

    public static OnnxAttribute Float(string name, float value) =>
        new(name, new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Float, F = value });

    public static OnnxAttribute String(string name, string value) =>
        new(name, new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.String, S = ByteString.CopyFromUtf8(value) });

    public static OnnxAttribute Ints(string name, params long[] values)
    {
        var proto = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        proto.Ints.Add(values);
        return new(name, proto);
    }
}

/// <summary>
/// Writes an ONNX graph node by node. Values are named automatically; the builder only checks what the
/// ONNX Runtime loader would otherwise report far from the cause (unknown value names).
/// </summary>
internal sealed class OnnxGraphBuilder
{
    private readonly GraphProto _graph;
    private readonly HashSet<string> _values = new(StringComparer.Ordinal);
    private int _next;

    public OnnxGraphBuilder(string name) => _graph = new GraphProto { Name = name };

    /// <summary>Declares a graph input; a dimension is a <see cref="long"/> size or a <see cref="string"/> symbol.</summary>
    public string Input(string name, TensorProto.Types.DataType type, params object[] dims)
    {
        _graph.Input.Add(ValueInfo(name, type, dims));
        _values.Add(name);
        return name;
    }

    /// <summary>Declares a graph output, renaming <paramref name="value"/> to <paramref name="name"/> with an Identity.</summary>
    public void Output(string value, string name, TensorProto.Types.DataType type, params object[] dims)
    {
        Node("Identity", [value], name);
        _graph.Output.Add(ValueInfo(name, type, dims));
    }

    public string Constant(ReadOnlySpan<float> values, params long[] dims) =>
        Initializer(TensorProto.Types.DataType.Float, MemoryMarshal.AsBytes(values), dims);

    public string Constant(ReadOnlySpan<long> values, params long[] dims) =>
        Initializer(TensorProto.Types.DataType.Int64, MemoryMarshal.AsBytes(values), dims);

    public string Constant(ReadOnlySpan<bool> values, params long[] dims) =>
        Initializer(TensorProto.Types.DataType.Bool, MemoryMarshal.AsBytes(values), dims);

    public string Scalar(float value) => Constant([value]);

    public string Scalar(long value) => Constant([value]);

    /// <summary>Adds a node with one output and returns the output's name.</summary>
    public string Node(string op, string[] inputs, params OnnxAttribute[] attributes) =>
        Nodes(op, inputs, 1, attributes)[0];

    /// <summary>Adds a node whose single output gets a fixed name.</summary>
    public string Node(string op, string[] inputs, string output, params OnnxAttribute[] attributes)
    {
        AddNode(op, inputs, [output], attributes);
        return output;
    }

    /// <summary>Adds a node with several outputs and returns their names.</summary>
    public string[] Nodes(string op, string[] inputs, int outputs, params OnnxAttribute[] attributes)
    {
        var names = new string[outputs];
        for (var i = 0; i < outputs; i++)
        {
            names[i] = $"{op.ToLowerInvariant()}_{_next++}";
        }

        AddNode(op, inputs, names, attributes);
        return names;
    }

    public ModelProto Build(int opset, string producer)
    {
        var model = new ModelProto
        {
            IrVersion = 8,
            ProducerName = producer,
            ProducerVersion = typeof(OnnxGraphBuilder).Assembly.GetName().Version?.ToString() ?? "0",
            Graph = _graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = opset });
        return model;
    }

    private void AddNode(string op, string[] inputs, string[] outputs, OnnxAttribute[] attributes)
    {
        foreach (var input in inputs)
        {
            if (input.Length > 0 && !_values.Contains(input))
            {
                throw new InvalidOperationException($"ONNX node {op} reads '{input}', which no earlier node or input defines.");
            }
        }

        var node = new NodeProto { OpType = op, Name = $"{op}_{_next++}" };
        node.Input.Add(inputs);
        node.Output.Add(outputs);
        foreach (var attribute in attributes)
        {
            node.Attribute.Add(attribute.Proto);
        }

        _graph.Node.Add(node);
        foreach (var output in outputs)
        {
            _values.Add(output);
        }
    }

    private string Initializer(TensorProto.Types.DataType type, ReadOnlySpan<byte> bytes, long[] dims)
    {
        var name = $"const_{_next++}";
        var tensor = new TensorProto { Name = name, DataType = (int)type, RawData = ByteString.CopyFrom(bytes) };
        tensor.Dims.Add(dims);
        _graph.Initializer.Add(tensor);
        _values.Add(name);
        return name;
    }

    private static ValueInfoProto ValueInfo(string name, TensorProto.Types.DataType type, object[] dims)
    {
        var shape = new TensorShapeProto();
        foreach (var dim in dims)
        {
            shape.Dim.Add(dim switch
            {
                string symbol => new TensorShapeProto.Types.Dimension { DimParam = symbol },
                long size => new TensorShapeProto.Types.Dimension { DimValue = size },
                int size => new TensorShapeProto.Types.Dimension { DimValue = size },
                _ => throw new ArgumentException($"Dimension {dim} is neither a size nor a symbol.", nameof(dims)),
            });
        }

        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)type, Shape = shape } },
        };
    }
}
