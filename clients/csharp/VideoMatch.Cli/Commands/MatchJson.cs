using System.Buffers;
using System.Text;
using System.Text.Json;
using VideoMatch.Client;

namespace VideoMatch.Cli.Commands;

/// <summary>Matches in the Hugging Face pipeline's JSON shape, one match per line.</summary>
internal static class MatchJson
{
    /// <summary><c>[{"keypoint_image_0":{"x":..,"y":..},"keypoint_image_1":{"x":..,"y":..},"score":..}, ...]</c></summary>
    public static async Task WriteListAsync(TextWriter writer, IReadOnlyList<KeypointMatch> matches)
    {
        await writer.WriteAsync('[').ConfigureAwait(false);
        var buffer = new ArrayBufferWriter<byte>();
        for (var i = 0; i < matches.Count; i++)
        {
            buffer.ResetWrittenCount();
            using (var json = new Utf8JsonWriter(buffer))
            {
                WriteMatch(json, matches[i]);
            }

            await writer.WriteAsync(i == 0 ? "\n  " : ",\n  ").ConfigureAwait(false);
            await writer.WriteAsync(Encoding.UTF8.GetString(buffer.WrittenSpan)).ConfigureAwait(false);
        }

        await writer.WriteLineAsync(matches.Count == 0 ? "]" : "\n]").ConfigureAwait(false);
    }

    public static void WriteMatch(Utf8JsonWriter json, KeypointMatch match)
    {
        json.WriteStartObject();
        json.WriteStartObject("keypoint_image_0");
        json.WriteNumber("x", match.X0);
        json.WriteNumber("y", match.Y0);
        json.WriteEndObject();
        json.WriteStartObject("keypoint_image_1");
        json.WriteNumber("x", match.X1);
        json.WriteNumber("y", match.Y1);
        json.WriteEndObject();
        json.WriteNumber("score", match.Score);
        json.WriteEndObject();
    }
}
