using System.Buffers.Binary;

namespace VideoMatch.Tests.Frames;

/// <summary>Images whose headers promise far more pixels than their bytes hold.</summary>
internal static class ImageBombs
{
    /// <summary>A PNG declaring <paramref name="width"/>×<paramref name="height"/> RGBA with <paramref name="bytes"/> bytes of (invalid) image data.</summary>
    public static byte[] PngDeclaring(int width, int height, int bytes, byte colourType = 6) => Png(width, height, colourType, new byte[bytes]);

    /// <summary>A PNG of signature, IHDR and one IDAT holding <paramref name="idat"/> (not valid deflate: only the header is read).</summary>
    public static byte[] Png(int width, int height, byte colourType, byte[] idat)
    {
        var ihdr = new byte[13];
        BinaryPrimitives.WriteInt32BigEndian(ihdr, width);
        BinaryPrimitives.WriteInt32BigEndian(ihdr.AsSpan(4), height);
        (ihdr[8], ihdr[9]) = (8, colourType);
        return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, .. Chunk("IHDR", ihdr), .. Chunk("IDAT", idat), .. Chunk("IEND", [])];
    }

    private static byte[] Chunk(string type, byte[] data)
    {
        var chunk = new byte[12 + data.Length];
        BinaryPrimitives.WriteInt32BigEndian(chunk, data.Length);
        System.Text.Encoding.ASCII.GetBytes(type).CopyTo(chunk, 4);
        data.CopyTo(chunk, 8);
        BinaryPrimitives.WriteUInt32BigEndian(chunk.AsSpan(8 + data.Length), Crc32(chunk.AsSpan(4, 4 + data.Length)));
        return chunk;
    }

    private static uint Crc32(ReadOnlySpan<byte> bytes)
    {
        var crc = 0xFFFFFFFFu;
        foreach (var b in bytes)
        {
            crc ^= b;
            for (var k = 0; k < 8; k++)
            {
                crc = (crc & 1) != 0 ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
            }
        }

        return ~crc;
    }
}
