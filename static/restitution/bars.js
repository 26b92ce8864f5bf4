// The charts' bars get their length from the page (data-width, data-height: percentages) set
// here through the CSSOM: a style attribute in the HTML would need 'unsafe-inline' in the
// Content-Security-Policy.
for (const bar of document.querySelectorAll("[data-width]")) bar.style.width = `${Number(bar.dataset.width)}%`;
for (const bar of document.querySelectorAll("[data-height]")) bar.style.height = `${Number(bar.dataset.height)}%`;
