using System.Globalization;
using VideoMatch.Contracts.V1;
using VideoMatch.Engine.Geometry;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Server.Services;

/// <summary>What MatchPair and a stream share: which matches to keep, the transform to fit, how frames fill the input.</summary>
/// <param name="InlierThresholdPx">Largest reprojection error of an inlier, in original pixels (the default filled in).</param>
internal sealed record MatchSettings(float Threshold, int MaxMatches, TransformKind Estimate, double InlierThresholdPx, bool Letterbox)
{
    /// <summary>Checks the fields every request has, adding one line per problem to <paramref name="problems"/>.</summary>
    public static MatchSettings Parse(float? threshold, uint maxMatches, TransformModel estimate, float inlierThresholdPx, bool letterbox,
        ModelManifest model, List<string> problems)
    {
        var kept = threshold ?? model.DefaultThreshold;
        if (!(kept >= 0f && kept < 1f))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"match_threshold must be in [0, 1); got {threshold}."));
        }

        var kind = ProtoMapping.ToKind(estimate);
        if (kind is null)
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"estimate = {(int)estimate} is not a TransformModel this server knows; use TRANSFORM_MODEL_HOMOGRAPHY, AFFINE or SIMILARITY, or leave it unset."));
        }

        if (!(inlierThresholdPx >= 0f && inlierThresholdPx <= 1000f))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture,
                $"inlier_threshold_px must be in [0, 1000] pixels (0: {TransformEstimator.DefaultThresholdPx} px); got {inlierThresholdPx}."));
        }

        return new MatchSettings(kept, (int)Math.Min(maxMatches, int.MaxValue), kind ?? TransformKind.None,
            inlierThresholdPx == 0f ? TransformEstimator.DefaultThresholdPx : inlierThresholdPx, letterbox);
    }

    /// <exception cref="Grpc.Core.RpcException">INVALID_ARGUMENT listing every problem of the request.</exception>
    public static MatchSettings Parse(MatchPairRequest request, ModelManifest model)
    {
        var problems = new List<string>();
        var settings = Parse(request.MatchThreshold, request.MaxMatches, request.Estimate, request.InlierThresholdPx, request.Letterbox, model, problems);
        return problems.Count == 0 ? settings : throw Answers.InvalidArgument(string.Join(" ", problems));
    }
}

/// <summary>A stream's settings, parsed once from its StreamConfig; every problem is reported at once.</summary>
/// <param name="TrackRadiusPx">Track-linking radius in original pixels; 0: the model's default.</param>
internal sealed record StreamSettings(string Name, MatchSettings Match, bool Keyframes, int RekeyMinInliers, bool TrackIds, double TrackRadiusPx)
{
    /// <summary>Keyframe mode re-keys below this many inliers when the stream sets no threshold.</summary>
    public const int DefaultRekeyMinInliers = 50;

    /// <summary>Longest stream name kept for logs, in characters of the client's name.</summary>
    public const int MaxNameLength = 128;

    /// <summary>
    /// The client's stream name made safe to log: cut to <see cref="MaxNameLength"/> (never inside a surrogate pair),
    /// and every control or formatting character (CR, LF, ESC of an ANSI sequence, a bidirectional override) written
    /// as its \uXXXX escape, so a name can neither forge a log line nor recolour a terminal.
    /// </summary>
    public static string Printable(string name) => Printable(name, MaxNameLength);

    /// <summary>As <see cref="Printable(string)"/>, cut to <paramref name="maxLength"/> characters.</summary>
    public static string Printable(string name, int maxLength)
    {
        var length = Math.Min(name.Length, maxLength);
        if (length < name.Length && char.IsHighSurrogate(name[length - 1]))
        {
            length--;
        }

        var text = new System.Text.StringBuilder(length);
        foreach (var c in name.AsSpan(0, length))
        {
            if (char.GetUnicodeCategory(c) is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.LineSeparator
                or UnicodeCategory.ParagraphSeparator)
            {
                text.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            }
            else
            {
                text.Append(c);
            }
        }

        return text.ToString();
    }

    /// <exception cref="Grpc.Core.RpcException">INVALID_ARGUMENT listing every problem of the config.</exception>
    public static StreamSettings Parse(StreamConfig config, ModelManifest model, string peer)
    {
        var problems = new List<string>();
        var match = MatchSettings.Parse(config.MatchThreshold, config.MaxMatches, config.Estimate, config.InlierThresholdPx, config.Letterbox, model, problems);
        if (config.RekeyMinInliers > 0 && !config.Keyframes)
        {
            problems.Add("rekey_min_inliers is set but keyframes is not; set keyframes = true to use keyframe mode.");
        }

        if (!(config.TrackRadiusPx >= 0f && config.TrackRadiusPx <= 1000f))
        {
            problems.Add(string.Create(CultureInfo.InvariantCulture, $"track_radius_px must be in [0, 1000] pixels (0: the model's default); got {config.TrackRadiusPx}."));
        }

        if (config.TrackRadiusPx > 0f && !config.TrackIds)
        {
            problems.Add("track_radius_px is set but track_ids is not; set track_ids = true to get track ids.");
        }

        if (problems.Count > 0)
        {
            throw Answers.InvalidArgument(string.Join(" ", problems));
        }

        var name = config.StreamName.Length > 0 ? Printable(config.StreamName) : peer;
        var rekey = config.RekeyMinInliers == 0 ? DefaultRekeyMinInliers : (int)Math.Min(config.RekeyMinInliers, int.MaxValue);
        return new StreamSettings(name, match, config.Keyframes, rekey, config.TrackIds, config.TrackRadiusPx);
    }
}
