using System.Globalization;
using VideoMatch.Engine.Models;

namespace VideoMatch.Engine.Inference;

/// <summary>How far the engine's outputs may be from PyTorch's for an export to pass its self-check.</summary>
/// <param name="MismatchedFraction">Share of matched slots whose match may differ (a near-tie can flip in lower precision).</param>
/// <param name="ScoreDifference">Largest score difference.</param>
/// <param name="KeypointDifferencePx">Keypoint difference, in model-input pixels, above which a slot matched on both sides is an outlier.</param>
/// <param name="KeypointOutlierFraction">Share of those slots allowed above <paramref name="KeypointDifferencePx"/> (a flipped fine argmax moves a point by a pixel).</param>
public sealed record SelfCheckTolerances(double MismatchedFraction, double ScoreDifference, double KeypointDifferencePx, double KeypointOutlierFraction)
{
    /// <summary>
    /// fp32: the same graph on the same inputs. Measured against PyTorch on CPU: scores within 4e-5, keypoints within
    /// 4e-5 px (tiny and default configs); the limits leave a 2–25× margin and allow no flipped match or outlier.
    /// </summary>
    public static SelfCheckTolerances Fp32 { get; } = new(0, 1e-4, 1e-3, 0);

    /// <summary>
    /// fp16 (backbone, transformer and FPN; matching in fp32). Measured on CPU for the tiny config: scores within 2e-3,
    /// keypoints within 4e-4 px, no flipped match. Up to 2% of matches may flip or move by more than 0.1 px (near-ties
    /// of the coarse or the fine argmax), and no score may move by more than 0.02.
    /// </summary>
    public static SelfCheckTolerances Fp16 { get; } = new(0.02, 0.02, 0.1, 0.02);

    /// <summary>The tolerances for a graph of <paramref name="precision"/> (<c>fp32</c> or <c>fp16</c>).</summary>
    public static SelfCheckTolerances For(string precision) => precision == "fp16" ? Fp16 : Fp32;
}

/// <summary>What a self-check found.</summary>
public sealed record SelfCheckReport(
    string Model, string Provider, int Pairs, int MatchedSlots, int MismatchedSlots, double MaxScoreDifference, double MaxKeypointDifferencePx,
    int KeypointOutliers, SelfCheckTolerances Tolerances)
{
    public bool Passed => MismatchedSlots <= Tolerances.MismatchedFraction * Math.Max(1, MatchedSlots)
        && MaxScoreDifference <= Tolerances.ScoreDifference
        && KeypointOutliers <= Tolerances.KeypointOutlierFraction * MatchedSlots;

    /// <summary>One line with every figure and the limits.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"self-check of {Model} on {Provider}: {(Passed ? "passed" : "FAILED")}: {Pairs} pairs, {MatchedSlots} matched slots, " +
        $"{MismatchedSlots} with a different match (limit {Tolerances.MismatchedFraction:P0}), " +
        $"largest score difference {MaxScoreDifference:G3} (limit {Tolerances.ScoreDifference:G3}), " +
        $"largest keypoint difference {MaxKeypointDifferencePx:G3} px ({KeypointOutliers} above {Tolerances.KeypointDifferencePx:G3} px, limit {Tolerances.KeypointOutlierFraction:P0})");
}

/// <summary>
/// Runs an export's <c>selfcheck.safetensors</c> (inputs and the PyTorch module's outputs, written by tools/export)
/// through the engine's session and compares: the check that an export runs right where it is served.
/// </summary>
public static class SelfCheck
{
    /// <exception cref="InvalidDataException">The self-check file is missing or does not fit the model.</exception>
    public static SelfCheckReport Run(IPairMatcher matcher, string path, SelfCheckTolerances tolerances)
    {
        var manifest = matcher.Manifest;
        Func<ReadOnlyMemory<byte>, int, (long[], float[], float[])> run = matcher switch
        {
            OnnxPairMatcher dense => (pixels, size) => dense.RunRaw(pixels.Span, size),
            SplitPairMatcher split => (pixels, size) => split.RunRaw(pixels.Span, size),
            _ => throw new InvalidDataException($"Model '{manifest.Name}' is not an exported dense model; only those have a self-check."),
        };
        if (!File.Exists(path))
        {
            throw new InvalidDataException($"Self-check file '{path}' does not exist; export the model again with tools/export/export.py, which writes it.");
        }

        var (tensors, _) = Safetensors.Read(path);
        var pixels = Get(tensors, path, "pixel_values").As<byte>("U8");
        var expectedMatches = Get(tensors, path, "matches").As<long>("I64");
        var expectedScores = Get(tensors, path, "matching_scores").As<float>("F32");
        var expectedKeypoints = Get(tensors, path, "keypoints").As<float>("F32");
        var (width, height, cells) = (manifest.Input.Width, manifest.Input.Height, manifest.Cells);
        var pairs = pixels.Length / (2 * width * height);
        if (pairs == 0 || pixels.Length != pairs * 2 * width * height || expectedMatches.Length != pairs * 2 * cells || expectedKeypoints.Length != pairs * 4 * cells)
        {
            throw new InvalidDataException($"Self-check file '{path}' does not fit model '{manifest.Name}' ({width}×{height}, {cells} cells): was it written for another export?");
        }

        int matched = 0, mismatched = 0, outliers = 0;
        double scoreDifference = 0, keypointDifference = 0;
        for (var start = 0; start < pairs; start += matcher.MaxBatchSize)
        {
            var size = Math.Min(matcher.MaxBatchSize, pairs - start);
            var (matches, scores, keypoints) = run(pixels.AsMemory(start * 2 * width * height, size * 2 * width * height), size);
            for (var i = 0; i < size * 2 * cells; i++)
            {
                var at = (start * 2 * cells) + i;
                mismatched += matches[i] != expectedMatches[at] && i % (2 * cells) < cells ? 1 : 0;
                scoreDifference = Math.Max(scoreDifference, Math.Abs(scores[i] - expectedScores[at]));
            }

            for (var pair = 0; pair < size; pair++)
            {
                for (var slot = 0; slot < cells; slot++)
                {
                    var own = (pair * 2 * cells) + slot;
                    var theirs = ((start + pair) * 2 * cells) + slot;
                    if (matches[own] < 0 || expectedMatches[theirs] < 0)
                    {
                        continue;
                    }

                    matched++;
                    var difference = 0.0;
                    for (var row = 0; row < 2; row++)
                    {
                        var k = (((pair * 2) + row) * cells + slot) * 2;
                        var e = ((((start + pair) * 2) + row) * cells + slot) * 2;
                        difference = Math.Max(difference, Math.Abs(keypoints[k] - expectedKeypoints[e]) * width);
                        difference = Math.Max(difference, Math.Abs(keypoints[k + 1] - expectedKeypoints[e + 1]) * height);
                    }

                    keypointDifference = Math.Max(keypointDifference, difference);
                    outliers += difference > tolerances.KeypointDifferencePx ? 1 : 0;
                }
            }
        }

        return new SelfCheckReport(manifest.Name, matcher.ExecutionProvider, pairs, matched, mismatched, scoreDifference, keypointDifference, outliers, tolerances);
    }

    private static SafetensorsTensor Get(IReadOnlyDictionary<string, SafetensorsTensor> tensors, string path, string name) =>
        tensors.TryGetValue(name, out var tensor) ? tensor : throw new InvalidDataException($"Self-check file '{path}' has no tensor '{name}'.");
}
