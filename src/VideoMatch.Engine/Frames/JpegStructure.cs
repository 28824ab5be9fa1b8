namespace VideoMatch.Engine.Frames;

/// <summary>
/// Walks a JPEG's markers (ITU T.81, B.1) to find what the decoder forgives: SkiaSharp decodes a truncated
/// progressive JPEG, one without its end-of-image marker, or one with damaged entropy-coded data, and reports
/// success with grey or garbled blocks. A frame like that must not become a stream's reference.
/// </summary>
/// <remarks>
/// Damage that keeps the marker structure (a flipped bit inside a scan) cannot be seen without the decoder's
/// warnings, which SkiaSharp does not expose; what breaks the structure (truncation, lost bytes, stray markers) is.
/// </remarks>
internal static class JpegStructure
{
    /// <summary>Why the data is not a complete JPEG, or null when its structure is whole.</summary>
    public static string? Problem(ReadOnlySpan<byte> data)
    {
        if (data.Length < 4 || data[0] != 0xFF || data[1] != 0xD8)
        {
            return "it does not start with a JPEG start-of-image marker";
        }

        var i = 2;
        var scans = 0;
        while (true)
        {
            if (i >= data.Length)
            {
                return scans == 0 ? "it ends before its first scan (truncated)" : "it ends before its end-of-image marker (truncated)";
            }

            if (data[i] != 0xFF)
            {
                return $"byte {i} should start a marker but is 0x{data[i]:X2} (damaged data)";
            }

            // Any number of 0xFF fill bytes may precede a marker.
            while (i < data.Length && data[i] == 0xFF)
            {
                i++;
            }

            if (i >= data.Length)
            {
                return "it ends inside a marker (truncated)";
            }

            var marker = data[i++];
            if (marker == 0xD9)
            {
                return scans == 0 ? "it has no image data (no scan before its end-of-image marker)" : null;
            }

            if (marker is >= 0xD0 and <= 0xD7 or 0x01)
            {
                continue;
            }

            if (marker is < 0xC0 or 0xD8)
            {
                return $"it holds an invalid marker 0xFF{marker:X2} at byte {i - 2} (damaged data)";
            }

            if (i + 2 > data.Length)
            {
                return "it ends inside a segment header (truncated)";
            }

            var length = (data[i] << 8) | data[i + 1];
            if (length < 2 || i + length > data.Length)
            {
                return length < 2 ? $"the segment at byte {i - 2} has an impossible length (damaged data)" : "it ends inside a segment (truncated)";
            }

            i += length;
            if (marker != 0xDA)
            {
                continue;
            }

            // Entropy-coded data: 0xFF appears only stuffed (0xFF00) or as a restart marker until the next marker.
            scans++;
            while (true)
            {
                var next = data[i..].IndexOf((byte)0xFF);
                if (next < 0 || i + next + 1 >= data.Length)
                {
                    return "it ends inside its image data (truncated)";
                }

                i += next;
                var after = data[i + 1];
                if (after == 0x00 || after is >= 0xD0 and <= 0xD7)
                {
                    i += 2;
                    continue;
                }

                break;
            }
        }
    }
}
