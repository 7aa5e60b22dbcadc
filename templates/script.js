// Progressive enhancement only: the page is complete without this script.
// It adds a Copy button to every command meant to be pasted.
(function () {
  function copied(button) {
    button.textContent = 'Copied';
    setTimeout(function () { button.textContent = 'Copy'; }, 1500);
  }
  function selectText(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  document.querySelectorAll('pre.copy').forEach(function (pre) {
    var button = document.createElement('button');
    button.type = 'button';
    button.className = 'copy-button';
    button.textContent = 'Copy';
    button.addEventListener('click', function () {
      var text = (pre.querySelector('code') || pre).textContent;
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(function () { copied(button); }, function () { selectText(pre); });
      } else {
        selectText(pre);
        if (document.execCommand('copy')) { copied(button); }
      }
    });
    pre.classList.add('has-button');
    pre.appendChild(button);
  });
})();
