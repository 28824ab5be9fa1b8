using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace VideoMatch.Engine.Models;

/// <summary>One tensor of a safetensors file: its dtype name (F32, I64, U8, …), shape and little-endian bytes.</summary>
public sealed record SafetensorsTensor(string DType, long[] Shape, byte[] Data)
{
    public long Count => Shape.Aggregate(1L, (a, b) => a * b);

    /// <exception cref="InvalidDataException">The tensor does not hold <typeparamref name="T"/>.</exception>
    public T[] As<T>(string dtype)
        where T : unmanaged
    {
        if (DType != dtype)
        {
            throw new InvalidDataException($"tensor holds {DType}, expected {dtype}");
        }

        return MemoryMarshal.Cast<byte, T>(Data).ToArray();
    }
}

/// <summary>
/// Reads the safetensors format: an 8-byte little-endian header length, a JSON header (dtype, shape, data_offsets per
/// tensor, optional __metadata__), then the data. Little-endian hosts only (x86-64, arm64).
/// </summary>
public static class Safetensors
{
    private static readonly Dictionary<string, int> ElementSizes = new(StringComparer.Ordinal)
    {
        ["F64"] = 8, ["F32"] = 4, ["F16"] = 2, ["I64"] = 8, ["I32"] = 4, ["I16"] = 2, ["I8"] = 1, ["U8"] = 1, ["BOOL"] = 1,
    };

    /// <summary>Largest file read (2 GiB: what one array holds).</summary>
    public const long MaxBytes = int.MaxValue;

    /// <exception cref="InvalidDataException">The file is not a readable safetensors file; the message says where.</exception>
    public static (IReadOnlyDictionary<string, SafetensorsTensor> Tensors, IReadOnlyDictionary<string, string> Metadata) Read(string path)
    {
        // Never more than the file said it held when it was opened: a device or a growing file cannot balloon the read.
        var info = new FileInfo(path);
        if (info.Length > MaxBytes)
        {
            throw new InvalidDataException($"{path}: {info.Length} bytes is more than the {MaxBytes} a safetensors file may hold here.");
        }

        var raw = File.ReadAllBytes(path);
        if (raw.Length < 8)
        {
            throw new InvalidDataException($"{path}: {raw.Length} bytes is too short for a safetensors file.");
        }

        var length = BinaryPrimitives.ReadUInt64LittleEndian(raw);
        if (length > (ulong)(raw.Length - 8))
        {
            throw new InvalidDataException($"{path}: the header claims {length} bytes but the file holds {raw.Length - 8} after its length.");
        }

        var tensors = new Dictionary<string, SafetensorsTensor>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        var dataStart = 8 + (int)length;
        try
        {
            using var header = JsonDocument.Parse(raw.AsMemory(8, (int)length));
            foreach (var entry in header.RootElement.EnumerateObject())
            {
                if (entry.Name == "__metadata__")
                {
                    foreach (var item in entry.Value.EnumerateObject())
                    {
                        metadata[item.Name] = item.Value.GetString() ?? "";
                    }

                    continue;
                }

                var dtype = entry.Value.GetProperty("dtype").GetString() ?? "";
                var shape = entry.Value.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                var offsets = entry.Value.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64()).ToArray();
                if (!ElementSizes.TryGetValue(dtype, out var size))
                {
                    throw new InvalidDataException($"{path}: tensor '{entry.Name}' has dtype '{dtype}', which this reader does not know.");
                }

                var bytes = shape.Any(d => d < 0 || d > int.MaxValue) ? -1 : shape.Aggregate(1L, (a, b) => checked(a * b)) * size;
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] - offsets[0] != bytes || dataStart + offsets[1] > raw.Length)
                {
                    throw new InvalidDataException($"{path}: tensor '{entry.Name}' ({dtype} [{string.Join(", ", shape)}]) does not fit its data offsets.");
                }

                tensors[entry.Name] = new SafetensorsTensor(dtype, shape, raw.AsSpan(dataStart + (int)offsets[0], (int)bytes).ToArray());
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException or FormatException or OverflowException or ArgumentException)
        {
            throw new InvalidDataException($"{path}: the header is not valid safetensors JSON ({e.Message}).", e);
        }

        return (tensors, metadata);
    }

    /// <summary>Writes <paramref name="tensors"/> (name → dtype, shape, little-endian bytes) and <paramref name="metadata"/> as a safetensors file.</summary>
    public static void Write(string path, IReadOnlyDictionary<string, SafetensorsTensor> tensors, IReadOnlyDictionary<string, string> metadata)
    {
        var header = new Dictionary<string, object> { ["__metadata__"] = metadata };
        long offset = 0;
        foreach (var (name, tensor) in tensors)
        {
            header[name] = new { dtype = tensor.DType, shape = tensor.Shape, data_offsets = new[] { offset, offset + tensor.Data.Length } };
            offset += tensor.Data.Length;
        }

        var json = JsonSerializer.SerializeToUtf8Bytes(header);
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)json.Length);
        file.Write(length);
        file.Write(json);
        foreach (var tensor in tensors.Values)
        {
            file.Write(tensor.Data);
        }
    }
}
