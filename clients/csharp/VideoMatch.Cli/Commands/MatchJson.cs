using System.Buffers;
using System.Text;
using System.Text.Json;
using VideoMatch.Client;
using VideoMatch.Contracts.V1;

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

    /// <summary><c>{"matches": [pipeline list], "transform": [9 numbers] or null, "transform_failure": "…", "inliers": N}</c>.</summary>
    public static async Task WriteWithTransformAsync(TextWriter writer, IReadOnlyList<KeypointMatch> matches, Transform? transform)
    {
        await writer.WriteAsync("{\"matches\": ").ConfigureAwait(false);
        using (var list = new StringWriter())
        {
            await WriteListAsync(list, matches).ConfigureAwait(false);
            await writer.WriteAsync(list.ToString().TrimEnd()).ConfigureAwait(false);
        }

        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            WriteTransform(json, transform ?? new Transform { Failure = "the server returned no transform" });
            json.WriteEndObject();
        }

        // The transform's members, spliced after the list: ", \"transform\": …}".
        var members = Encoding.UTF8.GetString(buffer.WrittenSpan);
        await writer.WriteLineAsync($", {members[1..]}").ConfigureAwait(false);
    }

    /// <summary>
    /// "transform" (null when none was found, with "transform_failure") and "inliers": in the video's pixels when
    /// <paramref name="scale"/> is given, else in the images' own.
    /// </summary>
    public static void WriteTransform(Utf8JsonWriter json, Transform transform, FrameScale? scale = null)
    {
        if (transform.Matrix.Count == 9)
        {
            json.WriteStartArray("transform");
            foreach (var value in scale is { } s ? s.ToVideo(transform.Matrix) : [.. transform.Matrix])
            {
                json.WriteNumberValue(value);
            }

            json.WriteEndArray();
        }
        else
        {
            json.WriteNull("transform");
            json.WriteString("transform_failure", transform.Failure);
        }

        json.WriteNumber("inliers", transform.Inliers);
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
