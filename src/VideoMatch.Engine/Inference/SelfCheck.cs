using System.Globalization;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Models;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// How far the served matches may be from PyTorch's for an export to pass its self-check, judged as a user would:
/// which of PyTorch's matches the served graph keeps, which it adds, and how far the matches both keep differ.
/// </summary>
/// <param name="KeptFraction">Share of PyTorch's matches the served graph must keep (same image-0 point, image-1 point within half a coarse cell).</param>
/// <param name="AddedFraction">Matches the served graph may add, as a share of PyTorch's.</param>
/// <param name="ScoreDifference">Largest score difference over the matches both keep.</param>
/// <param name="KeypointDifferencePx">Keypoint difference, in model-input pixels, above which a kept match is an outlier.</param>
/// <param name="KeypointOutlierFraction">Share of kept matches allowed above <paramref name="KeypointDifferencePx"/> (a flipped fine argmax moves a point by a pixel).</param>
public sealed record SelfCheckTolerances(double KeptFraction, double AddedFraction, double ScoreDifference, double KeypointDifferencePx, double KeypointOutlierFraction)
{
    /// <summary>
    /// fp32: the same graph on the same inputs. Measured against PyTorch on CPU: scores within 4e-5, keypoints within
    /// 4e-5 px (tiny and default configs); the limits leave a 2–25× margin and allow no lost, added or moved match.
    /// </summary>
    public static SelfCheckTolerances Fp32 { get; } = new(1, 0, 1e-4, 1e-3, 0);

    /// <summary>
    /// fp16 (backbone, transformer and FPN; matching in fp32). Measured on CPU (docs/BENCHMARKS.md): near-ties of the
    /// coarse mutual check and of the threshold flip a few matches each way, and near-ties of the fine argmax move a
    /// few points by a pixel. At least 97% of PyTorch's matches must be kept and at most 3% added; over the kept
    /// ones scores within 0.02, and at most 3% of points more than 0.1 px away.
    /// </summary>
    public static SelfCheckTolerances Fp16 { get; } = new(0.97, 0.03, 0.02, 0.1, 0.03);

    /// <summary>The tolerances for a graph of <paramref name="precision"/> (<c>fp32</c> or <c>fp16</c>).</summary>
    public static SelfCheckTolerances For(string precision) => precision == "fp16" ? Fp16 : Fp32;
}

/// <summary>What a self-check found.</summary>
/// <param name="Reference">PyTorch's matches over every pair.</param>
/// <param name="Kept">Of those, the served graph's matches that have the same image-0 point and an image-1 point within half a coarse cell.</param>
/// <param name="Added">Served matches with no counterpart in PyTorch's.</param>
/// <param name="MaxScoreDifference">Over the kept matches.</param>
/// <param name="MaxKeypointDifferencePx">Over the kept matches, either image, in model-input pixels.</param>
/// <param name="KeypointOutliers">Kept matches whose points differ by more than the tolerance.</param>
public sealed record SelfCheckReport(
    string Model, string Provider, int Pairs, int Reference, int Kept, int Added, double MaxScoreDifference, double MaxKeypointDifferencePx,
    int KeypointOutliers, SelfCheckTolerances Tolerances)
{
    public bool Passed => Reference > 0
        && Kept >= Tolerances.KeptFraction * Reference
        && Added <= Tolerances.AddedFraction * Reference
        && MaxScoreDifference <= Tolerances.ScoreDifference
        && KeypointOutliers <= Tolerances.KeypointOutlierFraction * Kept;

    /// <summary>Share of PyTorch's matches kept.</summary>
    public double KeptShare => Reference == 0 ? 0 : (double)Kept / Reference;

    /// <summary>One line with every figure and the limits.</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"self-check of {Model} on {Provider}: {(Passed ? "passed" : "FAILED")}: {Pairs} pairs, {Reference} PyTorch matches{(Reference == 0 ? " (nothing to compare: the self-check file holds no match)" : "")}, {Kept} kept ({KeptShare:P1}, limit {Tolerances.KeptFraction:P0}), {Added} added (limit {Tolerances.AddedFraction:P0}), over the kept: largest score difference {MaxScoreDifference:G3} (limit {Tolerances.ScoreDifference:G3}), largest keypoint difference {MaxKeypointDifferencePx:G3} px ({KeypointOutliers} above {Tolerances.KeypointDifferencePx:G3} px, limit {Tolerances.KeypointOutlierFraction:P0})");
}

/// <summary>
/// Runs an export's <c>selfcheck.safetensors</c> (inputs and the PyTorch module's outputs, written by tools/export)
/// through the engine's session and compares the matches as the server reads them: the served outputs go through
/// the post-processing of the manifest's layout, PyTorch's through the layout the exporter recorded in the file, so
/// a manifest that misdescribes its graph fails here, not in a client.
/// </summary>
public static class SelfCheck
{
    /// <exception cref="InvalidDataException">The self-check file is unreadable or does not fit the model; the message says which.</exception>
    public static SelfCheckReport Run(IPairMatcher matcher, string path, SelfCheckTolerances tolerances)
    {
        var manifest = matcher.Manifest;
        Func<ReadOnlyMemory<byte>, int, (long[], float[], float[])> run = matcher switch
        {
            OnnxPairMatcher dense => (pixels, size) => dense.RunRaw(pixels.Span, size),
            SplitPairMatcher split => (pixels, size) => split.RunRaw(pixels.Span, size),
            _ => throw new InvalidDataException($"Model '{manifest.Name}' is not a dense model; only those have a self-check."),
        };

        // The file is keyed by the whole-pair graph's tensor names (tools/export writes it so).
        var pairGraph = manifest.Graph(GraphRole.Pair) ?? throw new InvalidDataException($"Model '{manifest.Name}' has no pair graph to name the self-check's tensors.");
        var (tensors, metadata) = Safetensors.Read(path);
        var pixels = Get(tensors, path, pairGraph.Inputs[0].Name, "U8").As<byte>("U8");
        var expectedMatches = Get(tensors, path, pairGraph.Outputs[0].Name, "I64").As<long>("I64");
        var expectedScores = Get(tensors, path, pairGraph.Outputs[1].Name, "F32").As<float>("F32");
        var expectedKeypoints = Get(tensors, path, pairGraph.Outputs[2].Name, "F32").As<float>("F32");
        var (width, height, cells) = (manifest.Input.Width, manifest.Input.Height, manifest.Cells);
        var plane = (long)width * height;
        var pairs = (int)(pixels.Length / (2 * plane));
        if (pairs == 0 || pixels.Length != pairs * 2 * plane || expectedMatches.Length != pairs * 2L * cells
            || expectedScores.Length != pairs * 2L * cells || expectedKeypoints.Length != pairs * 4L * cells)
        {
            throw new InvalidDataException($"Self-check file '{path}' does not fit model '{manifest.Name}' ({width}×{height}, {cells} cells): was it written for another export?");
        }

        // The exporter writes its layout into the file; files from before it did were all written in pair slots.
        var layoutName = metadata.GetValueOrDefault("layout", nameof(OutputLayout.PairSlots));
        if (!Enum.TryParse<OutputLayout>(layoutName, out var referenceLayout) || !Enum.IsDefined(referenceLayout))
        {
            throw new InvalidDataException($"Self-check file '{path}' says its outputs are laid out as '{layoutName}', which is no layout this server knows.");
        }

        var identity = FrameMapping.Create(width, height, width, height, rotated: false, letterbox: false);
        var served = new PostProcessor(cells, manifest.Outputs.Layout, width, height);
        var reference = new PostProcessor(cells, referenceLayout, width, height);
        var tally = new Tally(manifest.CoarseStride / 2.0, tolerances.KeypointDifferencePx);
        for (var start = 0; start < pairs; start += matcher.MaxBatchSize)
        {
            var size = Math.Min(matcher.MaxBatchSize, pairs - start);
            var (matches, scores, keypoints) = run(pixels.AsMemory((int)(start * 2 * plane), (int)(size * 2 * plane)), size);
            for (var pair = 0; pair < size; pair++)
            {
                var at = start + pair;
                var theirs = reference.Extract(expectedMatches.AsSpan(at * 2 * cells, 2 * cells), expectedScores.AsSpan(at * 2 * cells, 2 * cells),
                    expectedKeypoints.AsSpan(at * 4 * cells, 4 * cells), -1f, 0, identity, identity);
                var ours = served.Extract(matches.AsSpan(pair * 2 * cells, 2 * cells), scores.AsSpan(pair * 2 * cells, 2 * cells),
                    keypoints.AsSpan(pair * 4 * cells, 4 * cells), -1f, 0, identity, identity);
                tally.Compare(theirs, ours);
            }
        }

        return new SelfCheckReport(manifest.Name, matcher.ExecutionProvider, pairs, tally.Reference, tally.Kept, tally.Added, tally.ScoreDifference,
            tally.KeypointDifference, tally.Outliers, tolerances);
    }

    private static SafetensorsTensor Get(IReadOnlyDictionary<string, SafetensorsTensor> tensors, string path, string name, string dtype) =>
        tensors.TryGetValue(name, out var tensor)
            ? tensor.DType == dtype ? tensor : throw new InvalidDataException($"Self-check file '{path}': tensor '{name}' holds {tensor.DType}, expected {dtype}.")
            : throw new InvalidDataException($"Self-check file '{path}' has no tensor '{name}'.");

    /// <summary>
    /// Pairs PyTorch's matches with the served ones, one to one, as a user would recognise them: candidates have both
    /// points within <c>reach</c> (half a coarse cell) of the reference's, farther is another match; the closest
    /// candidates pair first, points and score together, so near-duplicates (two cells refined to the same points)
    /// pair with their own.
    /// </summary>
    private sealed class Tally(double reach, double outlierPx)
    {
        /// <summary>Pixels of cost per unit of score difference: 0.01 weighs as a hundredth of a cell.</summary>
        private const double ScoreWeightPx = 100;

        public int Reference { get; private set; }

        public int Kept { get; private set; }

        public int Added { get; private set; }

        public double ScoreDifference { get; private set; }

        public double KeypointDifference { get; private set; }

        public int Outliers { get; private set; }

        public void Compare(PairMatchResult theirs, PairMatchResult ours)
        {
            var candidates = new List<(double Cost, int Theirs, int Ours, double Distance)>();
            for (var i = 0; i < theirs.Count; i++)
            {
                for (var j = 0; j < ours.Count; j++)
                {
                    var distance = Math.Max(Distance(theirs.Keypoints0, ours.Keypoints0, i, j), Distance(theirs.Keypoints1, ours.Keypoints1, i, j));
                    if (distance <= reach)
                    {
                        candidates.Add((distance + (ScoreWeightPx * Math.Abs(theirs.Scores[i] - ours.Scores[j])), i, j, distance));
                    }
                }
            }

            candidates.Sort();
            var theirsUsed = new bool[theirs.Count];
            var oursUsed = new bool[ours.Count];
            var kept = 0;
            foreach (var (_, i, j, distance) in candidates)
            {
                if (theirsUsed[i] || oursUsed[j])
                {
                    continue;
                }

                (theirsUsed[i], oursUsed[j]) = (true, true);
                kept++;
                ScoreDifference = Math.Max(ScoreDifference, Math.Abs(theirs.Scores[i] - ours.Scores[j]));
                KeypointDifference = Math.Max(KeypointDifference, distance);
                Outliers += distance > outlierPx ? 1 : 0;
            }

            Reference += theirs.Count;
            Kept += kept;
            Added += ours.Count - kept;
        }

        /// <summary>The larger coordinate difference of point <paramref name="i"/> of <paramref name="a"/> and point <paramref name="j"/> of <paramref name="b"/>.</summary>
        private static double Distance(float[] a, float[] b, int i, int j) =>
            Math.Max(Math.Abs(a[2 * i] - b[2 * j]), Math.Abs(a[(2 * i) + 1] - b[(2 * j) + 1]));
    }
}
